"""G, D and the content features: shapes at odd sizes, identity start, freezing, config."""

import json

import keras
import numpy as np
import pytest

from sagim_tf import ContentFeatures, PatchDiscriminator, SaGIMGenerator
from sagim_tf.utils.errors import ConfigError, InputError
from sagim_tf.layers import InstanceNormalization, PadToMultiple


@pytest.mark.parametrize("height,width", [(37, 53), (8, 8), (5, 3), (64, 48)])
def test_generator_any_size(height, width):
    G = SaGIMGenerator(base_filters=4, depth=3, num_residual_blocks=1)
    rng = np.random.default_rng(1)
    image = rng.uniform(size=(2, height, width, 3)).astype(np.float32)
    guidance = rng.uniform(size=(2, height, width, 1)).astype(np.float32)
    edited = np.asarray(G([image, guidance]))
    assert edited.shape == image.shape
    assert edited.min() >= 0.0 and edited.max() <= 1.0
    # Untrained G is close to the identity.
    assert np.abs(edited - image).max() < 0.1


def test_generator_config_round_trip():
    G = SaGIMGenerator(base_filters=4, depth=2, num_residual_blocks=0, max_filters=8)
    config = json.loads(json.dumps(G.get_config()))
    assert {k: config[k] for k in ("base_filters", "depth", "num_residual_blocks", "max_filters")} == {
        "base_filters": 4, "depth": 2, "num_residual_blocks": 0, "max_filters": 8}
    G2 = SaGIMGenerator.from_config(config)
    assert G2.count_params() == G.count_params()
    with pytest.raises(ValueError, match="depth"):
        SaGIMGenerator(depth=-1)


def test_generator_keras_save_load(tmp_path):
    G = SaGIMGenerator(base_filters=4, depth=2, num_residual_blocks=1)
    x = np.random.default_rng(2).uniform(size=(1, 19, 23, 3)).astype(np.float32)
    s = np.random.default_rng(3).uniform(size=(1, 19, 23, 1)).astype(np.float32)
    path = tmp_path / "g.keras"
    G.save(path)
    G2 = keras.saving.load_model(path)
    assert isinstance(G2, SaGIMGenerator)
    np.testing.assert_array_equal(np.asarray(G([x, s])), np.asarray(G2([x, s])))


def test_discriminator_patches_and_round_trip(tmp_path):
    D = PatchDiscriminator(base_filters=4, num_layers=3)
    x = np.random.default_rng(0).uniform(size=(2, 37, 53, 3)).astype(np.float32)
    logits = np.asarray(D(x))
    assert logits.shape == (2, 5, 7, 1)
    D2 = PatchDiscriminator.from_config(json.loads(json.dumps(D.get_config())))
    assert D2.count_params() == D.count_params()
    D.save(tmp_path / "d.keras")
    D3 = keras.saving.load_model(tmp_path / "d.keras")
    np.testing.assert_array_equal(np.asarray(D3(x)), logits)


def test_instance_norm_normalises_each_channel():
    x = np.random.default_rng(0).normal(3.0, 5.0, size=(2, 9, 7, 4)).astype(np.float32)
    y = np.asarray(InstanceNormalization()(x))
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(1, 2)), 1.0, atol=1e-3)


def test_pad_to_multiple_shapes():
    x = np.zeros((1, 5, 3, 2), np.float32)
    assert tuple(PadToMultiple(8)(x).shape) == (1, 8, 8, 2)
    assert PadToMultiple(8).compute_output_shape((None, 5, None, 2)) == (None, 8, None, 2)


def test_content_features_random_is_seeded_and_frozen():
    a = ContentFeatures(weights=None, seed=3)
    b = ContentFeatures(weights=None, seed=3)
    c = ContentFeatures(weights=None, seed=4)
    x = np.random.default_rng(0).uniform(size=(1, 20, 24, 3)).astype(np.float32)
    fa, fb, fc = a(x), b(x), c(x)
    assert len(fa) == 5
    assert [tuple(f.shape) for f in fa] == [(1, 20, 24, 64), (1, 20, 24, 64), (1, 10, 12, 128),
                                            (1, 10, 12, 128), (1, 5, 6, 256)]
    np.testing.assert_array_equal(np.asarray(fa[-1]), np.asarray(fb[-1]))
    assert not np.allclose(np.asarray(fa[-1]), np.asarray(fc[-1]))
    assert a.trainable_variables == []
    assert "random" in a.weights_source


def test_content_features_vgg16_and_errors(tmp_path):
    phi = ContentFeatures(arch="vgg16", layers=("block1_conv1", "block2_conv2"), weights=None)
    assert len(phi(np.zeros((1, 8, 8, 3), np.float32))) == 2
    with pytest.raises(ConfigError, match="unknown vgg19 layer"):
        ContentFeatures(layers=("block9_conv1",))
    with pytest.raises(ConfigError, match="arch"):
        ContentFeatures(arch="resnet")
    with pytest.raises(InputError, match="does not exist"):
        ContentFeatures(weights=str(tmp_path / "missing.h5"))


def test_content_features_load_local_h5(tmp_path):
    # The real path for user-supplied weights: a notop .h5 file by path.
    src = ContentFeatures(weights=None, seed=7)
    full = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    for layer in full.layers:
        if layer.name in [l.name for l in src.extractor.layers] and layer.weights:
            layer.set_weights(src.extractor.get_layer(layer.name).get_weights())
    path = tmp_path / "vgg19_notop.weights.h5"
    full.save_weights(path)
    loaded = ContentFeatures(weights=str(path))
    x = np.random.default_rng(0).uniform(size=(1, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)[-1]), np.asarray(src(x)[-1]), rtol=1e-5)
    assert "file" in loaded.weights_source


def test_content_features_imagenet_offline_error_says_where(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure: no network")

    monkeypatch.setattr(keras.applications, "VGG19", no_network)
    with pytest.raises(InputError) as info:
        ContentFeatures(weights="imagenet")
    assert str(tmp_path / "models" / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5") in str(info.value)
