"""Every spec string builds a working estimator with the one call shape."""

import zipfile

import keras
import numpy as np
import pytest

from sagim_tf.estimators import available_estimators, build_estimator
from sagim_tf.estimators.itti_koch import IttiKochSaliency
from sagim_tf.utils.errors import ConfigError, InputError


def _check(estimator, shape=(2, 24, 32)):
    x = np.random.default_rng(0).random(shape + (3,), dtype=np.float32)
    y = np.asarray(estimator(x))
    assert y.shape == shape + (1,) and y.dtype == np.float32
    assert np.isfinite(y).all() and y.min() >= 0.0 and y.max() <= 1.0
    assert not estimator.trainable
    return y


def test_builtin_names_are_registered():
    names = available_estimators()
    for name in ("itti-koch", "salgan", "keras", "spectral-residual", "fine-grained"):
        assert name in names and names[name]


@pytest.mark.parametrize("spec", ["itti-koch", " Itti-Koch ", "spectral-residual", "fine-grained"])
def test_weight_free_specs(spec):
    estimator = build_estimator(spec)
    _check(estimator)


def test_differentiable_flags():
    assert build_estimator("itti-koch").differentiable is True
    assert build_estimator("spectral-residual").differentiable is False
    assert build_estimator("fine-grained").differentiable is False


def test_keras_spec_loads_user_model(tmp_path):
    path = str(tmp_path / "user.keras")
    IttiKochSaliency().save(path)
    estimator = build_estimator(f"keras:{path}")
    assert isinstance(estimator, keras.Model)
    _check(estimator)


def test_keras_spec_errors(tmp_path):
    with pytest.raises(InputError, match="keras estimator .*absent.keras.*file not found"):
        build_estimator(f"keras:{tmp_path / 'absent.keras'}")
    with pytest.raises(InputError, match="is a directory"):
        build_estimator(f"keras:{tmp_path}")
    (tmp_path / "user.h5").write_bytes(b"")
    with pytest.raises(InputError, match="expected a Keras '.keras' file"):
        build_estimator(f"keras:{tmp_path / 'user.h5'}")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a .keras archive"):
        build_estimator(f"keras:{bad}")
    empty = tmp_path / "empty.keras"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("notes.txt", "a zip, but no model in it")
    with pytest.raises(InputError, match="could not be loaded"):
        build_estimator(f"keras:{empty}")


def test_keras_spec_refuses_a_model_of_the_wrong_shape(tmp_path):
    two_channels = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(2, 1)])
    two_channels.save(tmp_path / "two.keras")
    with pytest.raises(InputError, match=r"to \(1, 64, 64, 2\); an estimator must return one"):
        build_estimator(f"keras:{tmp_path / 'two.keras'}")
    pooled = keras.Sequential(
        [keras.Input((48, 40, 3)), keras.layers.Conv2D(1, 1), keras.layers.MaxPooling2D()]
    )
    pooled.save(tmp_path / "pooled.keras")  # a fixed input size is probed as declared
    with pytest.raises(InputError, match=r"maps a \(1, 48, 40, 3\) image to \(1, 24, 20, 1\)"):
        build_estimator(f"keras:{tmp_path / 'pooled.keras'}")
    grey = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(1, 1)])
    grey.save(tmp_path / "grey.keras")
    with pytest.raises(InputError, match=r"expected images \(B, H, W, 3\)"):
        build_estimator(f"keras:{tmp_path / 'grey.keras'}")


def test_jit_compile_chooses_the_xla_form():
    assert build_estimator("itti-koch").antialias is True
    assert build_estimator("itti-koch", jit_compile=True).antialias is False
    # Estimators without an XLA form are built as usual.
    assert build_estimator("spectral-residual", jit_compile=True).differentiable is False


def test_spec_errors():
    with pytest.raises(ConfigError, match="unknown estimator"):
        build_estimator("deepgaze")
    with pytest.raises(ConfigError, match="needs an argument"):
        build_estimator("salgan")
    with pytest.raises(ConfigError, match="takes no argument"):
        build_estimator("itti-koch:x")
    with pytest.raises(ConfigError, match="non-empty"):
        build_estimator("")
    with pytest.raises(InputError, match="no such weights file"):
        build_estimator("salgan:/nonexistent/gen_modelWeights0090.npz")
