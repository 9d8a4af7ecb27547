"""TFLite variants: builtin ops only, any size through the signature runner, parity with Keras."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from sagim_tf.export import ExportError, TFLiteRunner, convert_to_tflite, export_tflite, parity
from sagim_tf.export.parity import check_parity, psnr
from sagim_tf.export.tflite import DEFAULT_FIXED_SIZE, tflite_filename
from sagim_tf.utils import io
from sagim_tf.utils.errors import ConfigError, InputError
from tests.export_helpers import batch, readme_python, tiny_generator, trivial_generator

# Parity bounds of each format against Keras G (the same as `sagim export` checks):
FP32_TOL = 1e-4  # TFLite's float32 kernels sum in another order than TensorFlow's
FP16_TOL = 1e-2  # weights rounded to float16 (about 3 significant digits)
INT8_MIN_PSNR = 30.0  # dB; int8 weight quantisation, against the float32 file

SHAPES = [(1, 16, 16), (2, 13, 17), (1, 48, 64), (3, 5, 9)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    g = tiny_generator()
    out = tmp_path_factory.mktemp("tflite")
    written = export_tflite(
        g, out, formats=("tflite", "tflite-fp16", "tflite-int8"), fixed_size=None
    )
    return g, {fmt: paths[0] for fmt, paths in written.items()}


def _op_names(path):
    return {d["op_name"] for d in Interpreter(model_path=path)._get_ops_details()}


def test_files_and_builtin_ops_only(files):
    _, paths = files
    assert {os.path.basename(p) for p in paths.values()} == {
        "sagim_fp32.tflite",
        "sagim_fp16.tflite",
        "sagim_int8.tflite",
    }
    for path in paths.values():
        ops = _op_names(path)
        assert "CONV_2D" in ops and "MIRROR_PAD" in ops
        assert not [op for op in ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE")], ops
        runner = TFLiteRunner(path)
        assert runner.dynamic and runner.input_size is None


@pytest.mark.parametrize("shape", SHAPES)
def test_float32_matches_keras_at_any_size(files, shape):
    g, paths = files
    image, guidance = batch(*shape, seed=sum(shape))
    reference = np.asarray(g([image, guidance]))
    out = TFLiteRunner(paths["tflite"]).edit(image, guidance)
    assert out.shape == image.shape and out.dtype == np.float32
    assert np.abs(out - reference).max() <= FP32_TOL
    assert np.abs(reference - image).max() > 0.05  # a real edit, not the identity


def test_one_runner_resizes_between_calls(files):
    g, paths = files
    runner = TFLiteRunner(paths["tflite"])
    for shape in SHAPES + SHAPES[:1]:
        image, guidance = batch(*shape, seed=7)
        expected = np.asarray(g([image, guidance]))
        assert np.abs(runner.edit(image, guidance) - expected).max() <= FP32_TOL
    single = runner.edit(image[0], guidance[0, ..., 0])  # (H, W, 3) and (H, W)
    assert single.shape == image.shape[1:]


@pytest.mark.parametrize("shape", SHAPES[:3])
def test_float16_weights_within_1e2(files, shape):
    g, paths = files
    image, guidance = batch(*shape, seed=11)
    out = TFLiteRunner(paths["tflite-fp16"]).edit(image, guidance)
    assert np.abs(out - np.asarray(g([image, guidance]))).max() <= FP16_TOL


@pytest.mark.parametrize("shape", SHAPES[:3])
def test_int8_dynamic_range_psnr_at_least_30db(files, shape):
    _, paths = files
    image, guidance = batch(*shape, seed=13)
    fp32 = TFLiteRunner(paths["tflite"]).edit(image, guidance)
    int8 = TFLiteRunner(paths["tflite-int8"]).edit(image, guidance)
    assert psnr(int8, fp32) >= INT8_MIN_PSNR
    assert os.path.getsize(paths["tflite-int8"]) < os.path.getsize(paths["tflite"])


def test_fixed_size_variant(tmp_path):
    g = tiny_generator()
    assert DEFAULT_FIXED_SIZE == (256, 192)
    data = convert_to_tflite(g, "float32", input_size=(40, 24))  # W, H
    runner = TFLiteRunner(data)
    assert not runner.dynamic and runner.input_size == (40, 24)
    details = runner.runner.get_input_details()
    assert list(details["image"]["shape"]) == [1, 24, 40, 3]
    assert list(details["guidance"]["shape"]) == [1, 24, 40, 1]
    image, guidance = batch(2, 24, 40, seed=5)
    out = runner.edit(image, guidance)  # batch of 2 runs one image at a time
    assert np.abs(out - np.asarray(g([image, guidance]))).max() <= FP32_TOL
    with pytest.raises(InputError, match="40x24"):
        runner.edit(*batch(1, 40, 24))
    assert tflite_filename("sagim", "tflite-fp16", (256, 192)) == "sagim_fp16_256x192.tflite"


@keras.saving.register_keras_serializable(package="sagim_tf_tests")
class _BesselLayer(keras.layers.Layer):
    def call(self, x):
        return tf.math.special.bessel_i0e(x)


def test_files_are_published_only_after_their_parity_check_passes(tmp_path, monkeypatch):
    """Written under hidden names, checked there, then renamed 0644 onto their names; a
    failed check publishes nothing and keeps an earlier export's file."""
    g, target = trivial_generator(), tmp_path / "tflite"
    target.mkdir()
    left = target / f".tmp-p{_dead_pid()}@{io._host()}-abcd.tflite"  # a killed export's
    left.write_bytes(b"half")
    staged = []

    def parity_of(generator):
        def check(files):
            final = target / "sagim_fp32.tflite"  # what is published while the check runs
            staged.append(final.read_bytes() if final.exists() else None)
            for path in files["tflite"]:
                assert os.path.basename(path).startswith(".tmp-p")
            return check_parity(generator, files)

        return check

    previous = os.umask(0o022)
    try:
        with monkeypatch.context() as m:
            m.setitem(parity.TOLERANCES, "tflite", -1.0)  # no file can pass
            with pytest.raises(ExportError, match="no TFLite file was published.*max .diff"):
                export_tflite(g, tmp_path, fixed_size=None, check=parity_of(g))
        assert os.listdir(target) == []  # nothing published, the killed one's file gone
        written = export_tflite(g, tmp_path, fixed_size=None, check=parity_of(g))
    finally:
        os.umask(previous)
    path = str(target / "sagim_fp32.tflite")
    assert written == {"tflite": [path]} and os.listdir(target) == ["sagim_fp32.tflite"]
    assert os.stat(path).st_mode & 0o777 == 0o644
    good = open(path, "rb").read()
    other = trivial_generator(seed=1)  # another model: fails the check against G
    with pytest.raises(ExportError, match="no TFLite file was published"):
        export_tflite(other, tmp_path, fixed_size=None, check=parity_of(g))
    assert open(path, "rb").read() == good and os.listdir(target) == ["sagim_fp32.tflite"]
    assert staged == [None, None, good]  # each new file was checked before it was published


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_non_builtin_op_is_an_error_naming_the_op():
    image = keras.Input((None, None, 3), name="image")
    guidance = keras.Input((None, None, 1), name="guidance")
    x = _BesselLayer()(keras.layers.Concatenate()([image, guidance]))
    model = keras.Model([image, guidance], keras.layers.Conv2D(3, 1)(x))
    with pytest.raises(ExportError, match="BesselI0e"):
        convert_to_tflite(model)


def test_bad_arguments(tmp_path):
    g = tiny_generator()
    with pytest.raises(ConfigError):
        export_tflite(g, tmp_path, formats=("tflite-int4",))
    with pytest.raises(ConfigError):
        convert_to_tflite(g, "int4")
    with pytest.raises(ConfigError):
        convert_to_tflite(g, input_size=(0, 10))
    with pytest.raises(InputError, match="not found"):
        TFLiteRunner(tmp_path / "missing.tflite")
    (tmp_path / "junk.tflite").write_bytes(b"junk")
    with pytest.raises(InputError):
        TFLiteRunner(tmp_path / "junk.tflite")


def test_readme_example_runs(files):
    _, paths = files
    code = readme_python("On device")
    assert "export/tflite/sagim_fp32.tflite" in code
    scope = {}
    exec(code.replace("export/tflite/sagim_fp32.tflite", paths["tflite"]), scope)
    assert scope["edited"].shape == scope["image"].shape
