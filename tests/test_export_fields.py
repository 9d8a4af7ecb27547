"""The operator head's ``fields`` export: SavedModel signature, TFLite fields files, parity."""

import os

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from sagim_tf.export import TFLiteRunner, convert_to_tflite, export_tflite
from sagim_tf.export.parity import check_parity, psnr
from sagim_tf.export.signatures import NUM_FIELDS, SIGNATURES
from sagim_tf.export.tflite import tflite_filename
from sagim_tf.layers.photo_operators import NUM_OPERATORS, OPERATOR_NAMES
from sagim_tf.models.generate import apply_fields
from sagim_tf.models.operator_head import field_model
from sagim_tf.utils.errors import ConfigError, InputError
from tests.export_helpers import (
    batch,
    readme_python,
    shared_operator_savedmodel,
    tiny_generator,
)

# The SavedModel against eager Keras: the same float32 ops, traced and reordered.
SAVEDMODEL_TOL = 1e-5
# TFLite's float32 kernels sum in another order than TensorFlow's (as for G's own file).
FP32_TOL = 1e-4
INT8_MIN_PSNR = 30.0  # dB, the applied edit of the int8 fields against the fp32 fields'

SHAPES = [(1, 16, 16), (2, 13, 17), (1, 40, 24)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return shared_operator_savedmodel(tmp_path_factory)


@pytest.fixture(scope="module")
def files(exported, tmp_path_factory):
    g = exported[0]
    out = tmp_path_factory.mktemp("fields_tflite")
    written = export_tflite(g, out, formats=("tflite",), fixed_size=None)
    return g, {key: paths[0] for key, paths in written.items()}


def _apply_each(image, fields):
    return np.stack([apply_fields(image[i], fields[i]) for i in range(len(image))])


def test_the_table_agrees_with_the_operators():
    assert NUM_FIELDS == NUM_OPERATORS == len(OPERATOR_NAMES)
    spec = SIGNATURES["fields"]
    assert list(spec.inputs) == ["image", "guidance"] and list(spec.outputs) == ["fields"]
    assert spec.outputs["fields"].channels == NUM_FIELDS
    assert spec.requires == ("operator_head",)


@pytest.mark.parametrize("shape", SHAPES)
def test_savedmodel_fields_equal_keras_field_model(exported, shape):
    g, _, _, loaded = exported
    image, guidance = batch(*shape, seed=sum(shape))
    fields = loaded.signatures["fields"](image=image, guidance=guidance)["fields"].numpy()
    expected = np.asarray(field_model(g)([image, guidance], training=False))
    assert fields.shape == shape + (NUM_FIELDS,) and fields.dtype == np.float32
    assert np.abs(fields - expected).max() <= SAVEDMODEL_TOL
    assert np.abs(expected).max() > 0.1  # nudged head: real fields, not zeros


@pytest.mark.parametrize("shape", SHAPES)
def test_exported_fields_applied_equal_gs_own_edit(exported, shape):
    g, _, _, loaded = exported
    image, guidance = batch(*shape, seed=3 + sum(shape))
    fields = loaded.signatures["fields"](image=image, guidance=guidance)["fields"].numpy()
    edited = _apply_each(image, fields)
    own = np.asarray(g([image, guidance], training=False))
    # apply_fields computes the same coefficients eagerly, outside G's graph: float32
    # rounding of the same ops, fused differently.
    assert np.abs(edited - own).max() <= SAVEDMODEL_TOL
    assert np.abs(own - image).max() > 0.05  # a real edit


def test_fields_in_graph_checks(exported):
    _, _, _, loaded = exported
    image, guidance = batch(1, 8, 8)
    with pytest.raises(tf.errors.InvalidArgumentError, match="guidance"):
        loaded.signatures["fields"](image=image, guidance=guidance[:, :5])
    with pytest.raises(tf.errors.InvalidArgumentError, match="lie in"):
        loaded.signatures["fields"](image=image * 2, guidance=guidance)


def test_fields_tflite_files_are_named_and_builtin_only(files):
    _, paths = files
    assert {key: os.path.basename(p) for key, p in paths.items()} == {
        "tflite": "sagim_fp32.tflite",
        "tflite:fields": "sagim_fields_fp32.tflite",
    }
    ops = {d["op_name"] for d in Interpreter(model_path=paths["tflite:fields"])._get_ops_details()}
    assert "CONV_2D" in ops
    assert not [op for op in ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE")]
    runner = TFLiteRunner(paths["tflite:fields"])
    assert runner.signature == "fields" and runner.dynamic
    assert TFLiteRunner(paths["tflite"]).signature == "serving_default"
    assert tflite_filename("sagim", "tflite-fp16", (64, 48), fields=True) == (
        "sagim_fields_fp16_64x48.tflite"
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_tflite_fields_match_keras(files, shape):
    g, paths = files
    image, guidance = batch(*shape, seed=5 + sum(shape))
    fields = TFLiteRunner(paths["tflite:fields"]).fields(image, guidance)
    expected = np.asarray(field_model(g)([image, guidance], training=False))
    assert fields.shape == expected.shape and fields.dtype == np.float32
    assert np.abs(fields - expected).max() <= FP32_TOL
    edited = _apply_each(image, fields)
    assert np.abs(edited - np.asarray(g([image, guidance]))).max() <= FP32_TOL
    single = TFLiteRunner(paths["tflite:fields"]).fields(image[0], guidance[0, ..., 0])
    assert single.shape == expected.shape[1:]


def test_int8_fields_edit_psnr(files):
    g, paths = files
    image, guidance = batch(2, 24, 32, seed=8)
    int8_file = TFLiteRunner(convert_to_tflite(g, "int8", fields=True))
    fp32 = _apply_each(image, TFLiteRunner(paths["tflite:fields"]).fields(image, guidance))
    int8 = _apply_each(image, int8_file.fields(image, guidance))
    assert psnr(int8, fp32) >= INT8_MIN_PSNR


def test_runner_refuses_the_other_kind_of_file(files):
    _, paths = files
    image, guidance = batch(1, 8, 8)
    with pytest.raises(InputError, match="fields file"):
        TFLiteRunner(paths["tflite:fields"]).edit(image, guidance)
    with pytest.raises(InputError, match="not a fields file"):
        TFLiteRunner(paths["tflite"]).fields(image, guidance)


def test_parity_check_covers_the_fields(exported, files):
    g, _, path, _ = exported
    _, paths = files
    written = {"savedmodel": [path], **{key: [p] for key, p in paths.items()}}
    report = check_parity(g, written)
    assert {"savedmodel", "savedmodel:fields", "tflite", "tflite:fields"} <= set(report)
    assert report["savedmodel:fields"] <= SAVEDMODEL_TOL and report["tflite:fields"] <= FP32_TOL


def test_fixed_size_fields_file(exported):
    g = exported[0]
    runner = TFLiteRunner(convert_to_tflite(g, input_size=(32, 24), fields=True))
    assert runner.signature == "fields" and runner.input_size == (32, 24)
    image, guidance = batch(2, 24, 32, seed=6)
    expected = np.asarray(field_model(g)([image, guidance]))
    assert np.abs(runner.fields(image, guidance) - expected).max() <= FP32_TOL
    with pytest.raises(ConfigError, match="operator-head"):
        convert_to_tflite(tiny_generator(), fields=True)


def test_readme_fields_example_runs(files):
    _, paths = files
    code = readme_python("On device", index=1)
    path = "export/tflite/sagim_fields_fp32.tflite"
    assert path in code
    scope = {}
    exec(code.replace(path, paths["tflite:fields"]), scope)
    assert scope["edited"].shape == scope["photo"].shape
    assert np.abs(scope["edited"] - scope["photo"]).max() > 0.01
