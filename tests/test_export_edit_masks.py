"""The ``edit_masks`` signature: the guidance rule in the graph and the whole edit, against
the NumPy rule (``guidance_from_boxes``) and ``edit_image``."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagim_tf.estimators import ResizingEstimator, build_estimator
from sagim_tf.export import export_savedmodel, load_savedmodel
from sagim_tf.export.guidance_graph import (
    MaskEditor,
    check_graph_estimator,
    gaussian_smooth,
    guidance_from_masks,
    scale_fields,
    traceable_resize,
)
from sagim_tf.export.parity import edit_masks_reference
from sagim_tf.export.signatures import SIGNATURES
from sagim_tf.guidance import gaussian_smooth as numpy_smooth
from sagim_tf.guidance import guidance_from_boxes
from sagim_tf.models.generate import scale_fields as numpy_scale_fields
from sagim_tf.utils.errors import ConfigError
from tests.export_helpers import batch, masks, shared_operator_savedmodel, tiny_generator
from tests.helpers import tiny_estimator

# The in-graph rule against NumPy/OpenCV: float32 sums in another order (TensorFlow's
# reductions against NumPy's pairwise sums, two conv2d passes against OpenCV's separable
# filter), a few float32 ulps of maps in [0, 1].
RULE_TOL = 1e-6
# The whole operator-head edit: the rule's ulps above, through E and G's field model in
# float32, traced against eager.
OPERATOR_TOL = 1e-5
# The residual head: the same, but the tiny test G's large output layer amplifies them.
RESIDUAL_TOL = 1e-4


@pytest.fixture(scope="module")
def operator_model(tmp_path_factory):
    g, e, _, loaded = shared_operator_savedmodel(tmp_path_factory)
    return g, e, loaded


@pytest.fixture(scope="module")
def residual_model(tmp_path_factory):
    g, e = tiny_generator(), tiny_estimator()
    path = export_savedmodel(g, tmp_path_factory.mktemp("residual_masks"), estimator=e)
    return g, e, load_savedmodel(path)


def _numpy_rule(saliency, emphasize, deemphasize):
    return guidance_from_boxes(
        saliency,
        [emphasize] if (emphasize > 0.5).any() else [],
        [deemphasize] if (deemphasize > 0.5).any() else [],
    )


@pytest.mark.parametrize("shape", [(24, 32), (50, 60), (7, 9), (2, 5), (1, 12), (97, 131)])
@pytest.mark.parametrize("kinds", ["both", "emphasize", "deemphasize"])
def test_guidance_rule_matches_numpy(shape, kinds):
    h, w = shape
    rng = np.random.default_rng(h * w)
    saliency = rng.uniform(0, 1, (1, h, w, 1)).astype(np.float32) ** 2
    emphasize, deemphasize = masks(1, h, w)
    emphasize[:, :, : max(1, w // 8)] = 0.7  # values in (0.5, 1] are inside too
    if kinds == "emphasize":
        deemphasize[:] = 0.0
    elif kinds == "deemphasize":
        emphasize[:] = 0.3  # no pixel above 0.5: no region of that kind
    expected = _numpy_rule(saliency[0], emphasize[0], deemphasize[0])
    got = guidance_from_masks(saliency, emphasize, deemphasize).numpy()[0]
    assert got.shape == expected.shape and got.dtype == np.float32
    assert np.abs(got - expected).max() <= RULE_TOL


def test_guidance_rule_per_image_of_a_batch():
    image_saliency = np.random.default_rng(1).uniform(0, 1, (3, 20, 28, 1)).astype(np.float32)
    emphasize, deemphasize = masks(3, 20, 28)
    emphasize[1] = 0.0
    deemphasize[2] = 0.0
    got = guidance_from_masks(image_saliency, emphasize, deemphasize).numpy()
    for i in range(3):
        expected = _numpy_rule(image_saliency[i], emphasize[i], deemphasize[i])
        assert np.abs(got[i] - expected).max() <= RULE_TOL


@pytest.mark.parametrize("shape", [(50, 50), (10, 80), (1, 7), (3, 3)])
def test_gaussian_smooth_matches_opencv(shape):
    x = np.random.default_rng(2).uniform(0, 1, shape).astype(np.float32)
    sigma = 0.02 * min(shape)
    got = gaussian_smooth(x[None, ..., None]).numpy()[0, ..., 0]
    assert np.abs(got - numpy_smooth(x, sigma)).max() <= RULE_TOL


def test_scale_fields_matches_numpy():
    fields = np.random.default_rng(3).normal(0, 2, (4, 5, 6, 7)).astype(np.float32)
    fields[0, 0, 0] = 40.0  # tanh rounds to 1: strength 1 must still keep it finite
    strength = np.array([0.0, 0.3, 0.8, 1.0], np.float32)
    got = scale_fields(fields, strength).numpy()
    np.testing.assert_array_equal(got[0], 0.0)
    np.testing.assert_array_equal(got[3], fields[3])
    assert np.isfinite(got).all()
    for i in (1, 2):
        expected = numpy_scale_fields(fields[i], float(strength[i]))
        # the same float32 ops; tf and NumPy tanh/arctanh differ in the last ulp
        np.testing.assert_allclose(got[i], expected, rtol=1e-5, atol=1e-6)


def test_signature_table_entry():
    spec = SIGNATURES["edit_masks"]
    assert list(spec.inputs) == ["image", "emphasize", "deemphasize", "strength"]
    assert list(spec.outputs) == ["edited"] and spec.requires == ("estimator",)
    assert spec.inputs["strength"].channels is None
    assert all(spec.inputs[k].max_value == 1.0 for k in spec.inputs)


@pytest.mark.parametrize("shape", [(2, 40, 56), (1, 13, 17)])
def test_operator_head_matches_edit_image(operator_model, shape):
    g, e, loaded = operator_model
    image, _ = batch(*shape, seed=sum(shape))
    emphasize, deemphasize = masks(*shape)
    deemphasize[-1] = 0.0  # the last image has an emphasized region only
    strength = np.linspace(1.0, 0.4, shape[0]).astype(np.float32)
    got = loaded.signatures["edit_masks"](
        image=image, emphasize=emphasize, deemphasize=deemphasize, strength=strength
    )["edited"].numpy()
    expected = edit_masks_reference(g, e, image, emphasize, deemphasize, strength)
    assert got.shape == image.shape
    assert np.abs(got - expected).max() <= OPERATOR_TOL
    assert np.abs(got - image).max() > 0.05  # a real edit


def test_operator_head_strength_zero_is_the_photo(operator_model):
    _, _, loaded = operator_model
    image, _ = batch(2, 24, 32, seed=4)
    emphasize, deemphasize = masks(2, 24, 32)
    out = loaded.signatures["edit_masks"](
        image=image, emphasize=emphasize, deemphasize=deemphasize, strength=np.float32(0)
    )["edited"].numpy()
    np.testing.assert_array_equal(out, image)


@pytest.mark.parametrize("strength", [1.0, 0.5, 0.0])
def test_residual_head_matches_edit_image(residual_model, strength):
    g, e, loaded = residual_model
    assert set(loaded.signatures) == {"serving_default", "edit_uint8", "edit_masks"}
    image, _ = batch(2, 24, 36, seed=9)
    emphasize, deemphasize = masks(2, 24, 36)
    emphasize[0] = 0.0  # the first image has a de-emphasized region only
    got = loaded.signatures["edit_masks"](
        image=image, emphasize=emphasize, deemphasize=deemphasize, strength=np.float32(strength)
    )["edited"].numpy()
    expected = edit_masks_reference(g, e, image, emphasize, deemphasize, strength)
    assert np.abs(got - expected).max() <= RESIDUAL_TOL


def _bad(case, image, emphasize, deemphasize, strength):
    if case == "mask_above_one":
        emphasize = emphasize * 1.5
    elif case == "negative_mask":
        deemphasize = deemphasize - 0.5
    elif case == "nan_mask":
        emphasize = emphasize.copy()
        emphasize[0, 0, 0, 0] = np.nan
    elif case == "strength_above_one":
        strength = np.float32(1.5)
    elif case == "negative_strength":
        strength = np.float32(-0.1)
    elif case == "nan_strength":
        strength = np.float32(np.nan)
    elif case == "strength_count":
        strength = np.full(3, 0.5, np.float32)
    elif case == "strength_rank":
        strength = np.full((2, 1), 0.5, np.float32)
    elif case == "mask_size":
        deemphasize = deemphasize[:, :5]
    elif case == "no_region":
        emphasize = np.zeros_like(emphasize)
        deemphasize = np.full_like(deemphasize, 0.5)  # 0.5 is not above 0.5
    elif case == "image_range":
        image = image * 2
    return image, emphasize, deemphasize, strength


BAD = {
    "mask_above_one": "emphasize: values must be finite and lie in",
    "negative_mask": "deemphasize: values must be finite",
    "nan_mask": "emphasize: values must be finite",
    "strength_above_one": "strength: values must be finite and lie in",
    "negative_strength": "strength: values",
    "nan_strength": "strength: values",
    "strength_count": "strength: must be a scalar or hold one value per image",
    "strength_rank": "strength: must be a scalar",
    "mask_size": "deemphasize: batch, height and width",
    "no_region": "no region",
    "image_range": "image: values",
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inputs_are_invalid_argument_naming_the_problem(operator_model, case):
    _, _, loaded = operator_model
    image, _ = batch(2, 12, 16)
    emphasize, deemphasize = masks(2, 12, 16)
    inputs = _bad(case, image, emphasize, deemphasize, np.float32(0.5))
    keys = ("image", "emphasize", "deemphasize", "strength")
    with pytest.raises(tf.errors.InvalidArgumentError, match=BAD[case]):
        loaded.signatures["edit_masks"](**dict(zip(keys, inputs)))


def test_an_estimator_outside_tensorflow_is_refused(tmp_path):
    class NumpyJudge:  # the shape of the OpenCV judges: a callable on NumPy arrays
        def __call__(self, images):
            return np.zeros(images.shape[:3] + (1,), np.float32)

    with pytest.raises(ConfigError, match="cannot be inside a SavedModel"):
        check_graph_estimator(NumpyJudge())
    with pytest.raises(ConfigError, match="NumpyJudge"):
        export_savedmodel(tiny_generator(), tmp_path, estimator=NumpyJudge())
    assert not (tmp_path / "sagim" / "1").exists()


def _resizing_estimator():
    inp = keras.Input((24, 32, 3))
    out = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inp)
    return ResizingEstimator(keras.Model(inp, out), native_size=(32, 24))


@pytest.mark.parametrize("spec", ["itti-koch", "resizing"])
def test_estimators_that_resize_inside_trace_at_any_size(spec):
    estimator = build_estimator(spec) if spec == "itti-koch" else _resizing_estimator()
    original = keras.ops.image.resize
    check_graph_estimator(estimator)  # traces it at an unknown (B, H, W)
    assert keras.ops.image.resize is original  # the work-around is undone after the trace
    editor = MaskEditor(tiny_generator(), estimator)
    with traceable_resize():
        saliency = tf.function(
            editor.saliency, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)]
        ).get_concrete_function()
    for shape in [(1, 17, 23), (2, 40, 56)]:
        image, _ = batch(*shape, seed=1)
        expected = np.clip(np.asarray(estimator(image, training=False)), 0.0, 1.0)
        # the same float32 ops traced against eager
        np.testing.assert_allclose(saliency(image).numpy(), expected, atol=1e-6)
