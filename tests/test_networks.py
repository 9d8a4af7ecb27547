"""The layers, G, D and the content features: shared checks, then each network's own rules.

Every class goes through :class:`tests.test_case.TestCase`'s serialization, ``.keras``
saving and mixed-precision checks; the other tests say what the network promises.
"""

import keras
import numpy as np
import pytest

from sagim_tf.layers import CropToReference, GaussianBlur, InstanceNormalization, PadToMultiple
from sagim_tf.models.content_features import ContentFeatures
from sagim_tf.models.discriminator import PatchDiscriminator
from sagim_tf.models.generator import ResidualOutput, SaGIMGenerator
from sagim_tf.utils.errors import ConfigError, InputError
from tests.test_case import TestCase, dtype_policy

RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(size=(2, 19, 23, 3)).astype(np.float32)
MAPS = RNG.uniform(size=(2, 19, 23, 1)).astype(np.float32)


class TestGaussianBlur(TestCase):
    init_kwargs = {"size": 5, "sigma": 1.5}

    def test_serialization_saving_precision(self):
        self.run_serialization_test(GaussianBlur, self.init_kwargs)
        self.run_model_saving_test(GaussianBlur, self.init_kwargs, IMAGES)
        self.run_precision_test(GaussianBlur, self.init_kwargs, IMAGES)


class TestInstanceNormalization(TestCase):
    init_kwargs = {"epsilon": 1e-3, "center": False, "scale": True}

    def test_serialization_saving_precision(self):
        self.run_serialization_test(InstanceNormalization, self.init_kwargs)
        self.run_model_saving_test(InstanceNormalization, self.init_kwargs, IMAGES)
        self.run_precision_test(InstanceNormalization, self.init_kwargs, IMAGES)

    def test_normalises_each_channel(self):
        x = RNG.normal(3.0, 5.0, size=(2, 9, 7, 4)).astype(np.float32)
        y = np.asarray(InstanceNormalization()(x))
        # float32 mean and variance over 63 pixels: rounding far below 1e-4.
        np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-4)
        # epsilon=1e-5 against a variance of ~25 shifts the std by ~2e-7; 1e-3 is rounding room.
        np.testing.assert_allclose(y.std(axis=(1, 2)), 1.0, atol=1e-3)

    def test_rejects_non_4d_input(self):
        with pytest.raises(ValueError, match="4-D"):
            InstanceNormalization()(np.zeros((2, 3, 4), np.float32))


class TestPadToMultiple(TestCase):
    def test_serialization_saving_precision(self):
        self.run_serialization_test(PadToMultiple, {"multiple": 4})
        self.run_model_saving_test(PadToMultiple, {"multiple": 4}, IMAGES)
        self.run_precision_test(PadToMultiple, {"multiple": 4}, IMAGES)

    def test_shapes(self):
        x = np.zeros((1, 5, 3, 2), np.float32)
        assert tuple(PadToMultiple(8)(x).shape) == (1, 8, 8, 2)
        assert PadToMultiple(8).compute_output_shape((None, 5, None, 2)) == (None, 8, None, 2)


class TestCropToReference(TestCase):
    def test_serialization_saving_precision(self):
        padded = np.pad(IMAGES, ((0, 0), (0, 5), (0, 1), (0, 0)))
        self.run_serialization_test(CropToReference, {})
        self.run_model_saving_test(CropToReference, {}, [padded, MAPS])
        self.run_precision_test(CropToReference, {}, [padded, MAPS])
        np.testing.assert_array_equal(np.asarray(CropToReference()([padded, MAPS])), IMAGES)


class TestResidualOutput(TestCase):
    def test_serialization_saving_precision(self):
        residual = RNG.normal(size=IMAGES.shape).astype(np.float32)
        self.run_serialization_test(ResidualOutput, {})
        self.run_model_saving_test(ResidualOutput, {}, [IMAGES, residual])
        self.run_precision_test(ResidualOutput, {}, [IMAGES, residual])
        # Its output is float32 whatever the policy: G's edit is never rounded to half.
        with dtype_policy("mixed_float16"):
            assert ResidualOutput()([IMAGES, residual]).dtype == "float32"


class TestSaGIMGenerator(TestCase):
    init_kwargs = {
        "base_filters": 4,
        "depth": 2,
        "num_residual_blocks": 1,
        "max_filters": 6,
        "output_init_stddev": 1e-2,
    }

    def test_serialization_saving_precision(self):
        self.run_serialization_test(SaGIMGenerator, self.init_kwargs)
        self.run_model_saving_test(SaGIMGenerator, self.init_kwargs, [IMAGES, MAPS])
        self.run_precision_test(
            SaGIMGenerator,
            self.init_kwargs,
            [IMAGES, MAPS],
            float32_layers=("residual", "crop", "edited"),
        )

    @pytest.mark.parametrize("height,width", [(37, 53), (8, 8), (5, 3), (64, 48)])
    def test_any_size_starts_near_identity(self, height, width):
        G = SaGIMGenerator(base_filters=4, depth=3, num_residual_blocks=1)
        image = RNG.uniform(size=(2, height, width, 3)).astype(np.float32)
        guidance = RNG.uniform(size=(2, height, width, 1)).astype(np.float32)
        edited = np.asarray(G([image, guidance]))
        assert edited.shape == image.shape
        assert edited.min() >= 0.0 and edited.max() <= 1.0
        # The last kernel starts at stddev 1e-3: the untrained residual is far below 0.1.
        assert np.abs(edited - image).max() < 0.1

    def test_rejects_bad_settings(self):
        with pytest.raises(ValueError, match="depth"):
            SaGIMGenerator(depth=-1)


class TestPatchDiscriminator(TestCase):
    init_kwargs = {"base_filters": 4, "num_layers": 2}

    def test_serialization_saving_precision(self):
        self.run_serialization_test(PatchDiscriminator, self.init_kwargs)
        self.run_model_saving_test(PatchDiscriminator, self.init_kwargs, IMAGES)
        self.run_precision_test(
            PatchDiscriminator, self.init_kwargs, IMAGES, float32_layers=("logits",)
        )

    def test_one_logit_per_patch(self):
        D = PatchDiscriminator(base_filters=4, num_layers=3)
        x = RNG.uniform(size=(2, 37, 53, 3)).astype(np.float32)
        assert tuple(D(x).shape) == (2, 5, 7, 1)


class TestContentFeatures(TestCase):
    init_kwargs = {
        "arch": "vgg16",
        "layers": ["block1_conv1", "block2_conv2"],
        "weights": None,
        "seed": 5,
        "feature_scale": 0.5,
    }

    def test_serialization_saving_precision(self):
        self.run_serialization_test(ContentFeatures, self.init_kwargs)
        self.run_model_saving_test(ContentFeatures, self.init_kwargs, IMAGES)
        self.run_precision_test(ContentFeatures, self.init_kwargs, IMAGES)

    def test_random_weights_are_seeded_and_frozen(self):
        a = ContentFeatures(weights=None, seed=3)
        b = ContentFeatures(weights=None, seed=3)
        c = ContentFeatures(weights=None, seed=4)
        x = RNG.uniform(size=(1, 20, 24, 3)).astype(np.float32)
        fa, fb, fc = a(x), b(x), c(x)
        assert [tuple(f.shape) for f in fa] == [
            (1, 20, 24, 64),
            (1, 20, 24, 64),
            (1, 10, 12, 128),
            (1, 10, 12, 128),
            (1, 5, 6, 256),
        ]
        np.testing.assert_array_equal(np.asarray(fa[-1]), np.asarray(fb[-1]))
        assert not np.allclose(np.asarray(fa[-1]), np.asarray(fc[-1]))
        assert a.trainable_variables == []
        assert "random" in a.weights_source

    def test_errors_name_the_problem(self, tmp_path):
        with pytest.raises(ConfigError, match="unknown vgg19 layer"):
            ContentFeatures(layers=("block9_conv1",))
        with pytest.raises(ConfigError, match="arch"):
            ContentFeatures(arch="resnet")
        with pytest.raises(InputError, match="does not exist"):
            ContentFeatures(weights=str(tmp_path / "missing.h5"))

    def test_loads_a_local_h5(self, tmp_path):
        # The real path for user-supplied weights: a notop .h5 file by path.
        src = ContentFeatures(weights=None, seed=7)
        full = keras.applications.VGG19(
            include_top=False, weights=None, input_shape=(None, None, 3)
        )
        used = {layer.name for layer in src.extractor.layers}
        for layer in full.layers:
            if layer.name in used and layer.weights:
                layer.set_weights(src.extractor.get_layer(layer.name).get_weights())
        path = tmp_path / "vgg19_notop.weights.h5"
        full.save_weights(path)
        loaded = ContentFeatures(weights=str(path))
        x = RNG.uniform(size=(1, 16, 16, 3)).astype(np.float32)
        # Same weights; only the float32 summation order may differ between the two builds.
        np.testing.assert_allclose(np.asarray(loaded(x)[-1]), np.asarray(src(x)[-1]), rtol=1e-5)
        assert "file" in loaded.weights_source

    def test_offline_imagenet_error_says_where(self, monkeypatch, tmp_path):
        monkeypatch.setenv("KERAS_HOME", str(tmp_path))

        def no_network(*args, **kwargs):
            raise Exception("URL fetch failure: no network")

        monkeypatch.setattr(keras.applications, "VGG19", no_network)
        with pytest.raises(InputError) as info:
            ContentFeatures(weights="imagenet")
        cache = tmp_path / "models" / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
        assert str(cache) in str(info.value)
