"""SalGAN port: the Keras model against an independent NumPy Lasagne forward pass.

The synthetic npz has the exact layout of the authors' gen_modelWeights0090.npz (54 arrays,
real shapes, ~60 MB of small random float32 values); the network is built at 32 x 16 so
the forward passes stay cheap.
"""

import importlib.util
import os

import numpy as np
import pytest

from sagim_tf.estimators import build_estimator
from sagim_tf.estimators.salgan import (
    BGRMeanPreprocess,
    build_salgan_network,
    convert_salgan,
    expected_shapes,
    keras_weights_from_npz,
    load_salgan,
    read_salgan_npz,
)
from sagim_tf.utils.errors import InputError
from tests.test_case import TestCase

SIZE = (32, 16)  # (width, height), a multiple of 16 so every pooling is exact
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def convert_main(argv):
    """Run scripts/convert_salgan.py's main() in this process (no second TF start-up)."""
    spec = importlib.util.spec_from_file_location(
        "convert_salgan_script", os.path.join(ROOT, "scripts", "convert_salgan.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


# The authors' layer order, written out independently of the package's tables.
# fmt: off
ENC = [(3, 64), (64, 64), "P", (64, 128), (128, 128), "P", (128, 256), (256, 256), (256, 256),
       "P", (256, 512), (512, 512), (512, 512), "P", (512, 512), (512, 512), (512, 512)]
DEC = [(512, 512), (512, 512), (512, 512), "U", (512, 512), (512, 512), (512, 512), "U",
       (512, 256), (256, 256), (256, 256), "U", (256, 128), (128, 128), "U", (128, 64), (64, 64)]
# fmt: on


def _synthetic_arrays(seed=0):
    rng = np.random.default_rng(seed)
    arrays = []
    for cin, cout in [s for s in ENC + DEC if s not in ("P", "U")]:
        std = np.sqrt(2.0 / (9 * cin))
        arrays.append(
            (rng.standard_normal((cout, cin, 3, 3), dtype=np.float32) * std).astype(np.float32)
        )
        arrays.append((rng.standard_normal(cout, dtype=np.float32) * 0.1).astype(np.float32))
    arrays.append((rng.standard_normal((1, 64, 1, 1), dtype=np.float32) * 0.3).astype(np.float32))
    arrays.append(np.array([0.1], np.float32))
    return arrays


@pytest.fixture(scope="module")
def weights_npz(tmp_path_factory):
    arrays = _synthetic_arrays()
    path = tmp_path_factory.mktemp("salgan") / "gen_modelWeights0090.npz"
    np.savez(path, *arrays)
    return str(path), arrays


# --- independent NumPy reference of the Lasagne forward pass (channels first, float64) ---


def _conv3x3(x, w, b, flip):
    """x (C, H, W); w (out, in, 3, 3). flip=False: cross-correlation; True: convolution."""
    c, h, wd = x.shape
    xp = np.zeros((c, h + 2, wd + 2))
    xp[:, 1:-1, 1:-1] = x
    out = np.zeros((w.shape[0], h, wd))
    for dy in range(3):
        for dx in range(3):
            ky, kx = (2 - dy, 2 - dx) if flip else (dy, dx)
            out += np.einsum("oi,ihw->ohw", w[:, :, ky, kx], xp[:, dy : dy + h, dx : dx + wd])
    return np.maximum(out + b[:, None, None], 0.0)


def _pool(x):
    c, h, w = x.shape
    h2, w2 = h // 2, w // 2
    return x[:, : 2 * h2, : 2 * w2].reshape(c, h2, 2, w2, 2).max(axis=(2, 4))


def _up(x):
    return np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)


def _reference(image, arrays):
    """image (H, W, 3) RGB in [0, 1] -> map (H', W') as the authors' Theano graph computes it."""
    x = image.astype(np.float64)[..., ::-1] * 255.0 - np.array([103.939, 116.779, 123.68])
    x = x.transpose(2, 0, 1)
    k = 0
    for flip, layers in ((False, ENC), (True, DEC)):
        for item in layers:
            if item == "P":
                x = _pool(x)
            elif item == "U":
                x = _up(x)
            else:
                x = _conv3x3(
                    x, arrays[k].astype(np.float64), arrays[k + 1].astype(np.float64), flip
                )
                k += 2
    logits = np.einsum("i,ihw->hw", arrays[52][0, :, 0, 0].astype(np.float64), x) + arrays[53][0]
    return 1.0 / (1.0 + np.exp(-logits))


def test_expected_layout():
    shapes = expected_shapes()
    assert len(shapes) == 54
    assert shapes[0] == (64, 3, 3, 3) and shapes[25] == (512,)
    assert shapes[26] == (512, 512, 3, 3) and shapes[50] == (64, 64, 3, 3)
    assert shapes[52] == (1, 64, 1, 1) and shapes[53] == (1,)
    assert [a.shape for a in _synthetic_arrays()] == shapes


def test_keras_matches_numpy_reference(weights_npz):
    path, arrays = weights_npz
    rng = np.random.default_rng(1)
    images = rng.random((2, SIZE[1], SIZE[0], 3), dtype=np.float32)
    estimator = load_salgan(path, input_size=SIZE)
    got = np.asarray(estimator(images))
    assert got.shape == (2, SIZE[1], SIZE[0], 1)
    for i in range(2):
        ref = _reference(images[i], arrays)
        assert ref.std() > 0.02, "reference output is flat: the comparison would be vacuous"
        # 26 float32 convolutions against float64 NumPy; the map is a sigmoid in [0, 1].
        np.testing.assert_allclose(got[i, ..., 0], ref, atol=1e-4, rtol=0)


def test_decoder_flip_matters(weights_npz):
    """Without the spatial flip of decoder kernels the output differs (the test has teeth)."""
    path, arrays = weights_npz
    images = np.random.default_rng(2).random((1, SIZE[1], SIZE[0], 3), dtype=np.float32)
    net = build_salgan_network(SIZE)
    for i, layer in enumerate(
        [lay for lay in net.layers if lay.name.startswith(("conv", "uconv"))]
    ):
        w = arrays[2 * i].transpose(2, 3, 1, 0)
        layer.set_weights([w, arrays[2 * i + 1]])
    net.get_layer("output").set_weights(keras_weights_from_npz(arrays)["output"])
    unflipped = np.asarray(net(images))[0, ..., 0]
    assert np.abs(unflipped - _reference(images[0], arrays)).max() > 1e-3


def test_converter_script_weights_h5(weights_npz, tmp_path):
    path, arrays = weights_npz
    out = tmp_path / "salgan.weights.h5"
    assert convert_main([path, str(out)]) == 0
    assert out.is_file()
    os.rename(path, path + ".moved")  # the converted file must not need the npz
    try:
        images = np.random.default_rng(3).random((1, SIZE[1], SIZE[0], 3), dtype=np.float32)
        estimator = load_salgan(str(out), input_size=SIZE)
        got = np.asarray(estimator(images))[0, ..., 0]
        # As above: float32 network against the float64 reference, outputs in [0, 1].
        np.testing.assert_allclose(got, _reference(images[0], arrays), atol=1e-4, rtol=0)
        spec_built = build_estimator(f"salgan:{out}")
        assert spec_built.native_size == (256, 192) and not spec_built.trainable
    finally:
        os.rename(path + ".moved", path)


@pytest.mark.slow
def test_converter_keras_file(weights_npz, tmp_path):
    import keras

    path, _ = weights_npz
    out = convert_salgan(path, tmp_path / "salgan.keras")
    loaded = build_estimator(f"keras:{out}")
    reference = load_salgan(path)
    for a, b in zip(loaded.network.get_weights(), reference.network.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert isinstance(loaded, keras.Model) and not loaded.trainable


def _write_npz(path, arrays, **kwargs):
    np.savez(path, *arrays, **kwargs)
    return str(path)


def test_converter_script_reports_bad_input(tmp_path, capsys):
    assert convert_main([str(tmp_path / "absent.npz"), str(tmp_path / "o.weights.h5")]) == 2
    assert "no such weights file" in capsys.readouterr().err


def test_truncated_file(weights_npz, tmp_path):
    data = open(weights_npz[0], "rb").read()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or not an npz"):
        load_salgan(str(bad))


def test_reshaped_array(weights_npz, tmp_path):
    arrays = list(weights_npz[1])
    arrays[30] = arrays[30].reshape(512, 512, 9, 1)
    bad = _write_npz(tmp_path / "reshaped.npz", arrays)
    with pytest.raises(
        InputError, match=r"arr_30 .* shape \(512, 512, 9, 1\), expected \(512, 512, 3, 3\)"
    ):
        load_salgan(bad)


def test_pickled_file_is_refused(tmp_path):
    arrays = [np.zeros(s, np.float32) for s in expected_shapes()]
    arrays[5] = np.array([{"evil": 1}] * arrays[5].shape[0], dtype=object)
    bad = tmp_path / "pickled.npz"
    np.savez(bad, *arrays)
    with pytest.raises(InputError, match="pickled"):
        read_salgan_npz(str(bad))


def test_wrong_count_dtype_and_missing(tmp_path):
    shapes = expected_shapes()
    few = _write_npz(tmp_path / "few.npz", [np.zeros(s, np.float32) for s in shapes[:53]])
    with pytest.raises(InputError, match="holds 53 arrays, expected 54"):
        read_salgan_npz(few)
    ints = [np.zeros(s, np.float32) for s in shapes]
    ints[0] = ints[0].astype(np.int32)
    with pytest.raises(InputError, match="arr_0 .* dtype int32"):
        read_salgan_npz(_write_npz(tmp_path / "ints.npz", ints))
    with pytest.raises(InputError, match="no such weights file"):
        load_salgan(str(tmp_path / "absent.npz"))
    other = tmp_path / "weights.bin"
    other.write_bytes(b"x")
    with pytest.raises(InputError, match="expected the authors' .npz"):
        load_salgan(str(other))


def test_network_shapes_and_preprocessing():
    net = build_salgan_network((256, 192))
    assert net.output_shape == (None, 192, 256, 1)
    assert net.count_params() == sum(int(np.prod(s)) for s in expected_shapes())
    pre = net.get_layer("bgr_mean")
    y = np.asarray(pre(np.array([[[[1.0, 0.5, 0.0]]]], np.float32)))[0, 0, 0]
    # float32 values near 100 carry ~1e-5 rounding; the means are given to 1e-3.
    np.testing.assert_allclose(y, [0.0 - 103.939, 127.5 - 116.779, 255.0 - 123.68], atol=1e-3)


class TestBGRMeanPreprocess(TestCase):
    init_kwargs = {"mean": [100.0, 110.0, 120.0]}

    def test_serialization_saving_precision(self):
        x = np.random.default_rng(4).random((2, 5, 7, 3), dtype=np.float32)
        self.run_serialization_test(BGRMeanPreprocess, self.init_kwargs)
        self.run_model_saving_test(BGRMeanPreprocess, self.init_kwargs, x)
        self.run_precision_test(BGRMeanPreprocess, self.init_kwargs, x)
