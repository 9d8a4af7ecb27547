"""Refinement of an operator-head G's fields against E (sagim_tf.models.refine)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from sagim_tf.estimators.itti_koch import IttiKochSaliency
from sagim_tf.evaluation.records import generator_method
from sagim_tf.inference.editor import Editor, edit_image
from sagim_tf.layers import BilinearUpsample, PhotoOperators
from sagim_tf.losses.locality import locality_loss
from sagim_tf.losses.reconstruction import reconstruction_loss
from sagim_tf.losses.settings import OPERATOR_COSTS, settings_loss
from sagim_tf.models.generate import apply_fields, predict_fields
from sagim_tf.models.generator import SaGIMGenerator
from sagim_tf.models.refine import REFINE_COSTS, REFINE_WEIGHTS, FieldRefiner
from sagim_tf.utils.errors import ConfigError, InputError
from tests.helpers import nudge_operator_head, random_batch, tiny_estimator, tiny_operator_g

H, W = 24, 32


@pytest.fixture(scope="module")
def parts():
    keras.utils.set_random_seed(0)
    g = nudge_operator_head(tiny_operator_g(), seed=3, kernel_std=0.1, bias_std=0.2)
    e = tiny_estimator(seed=1)
    image, _ = random_batch(1, H, W, seed=4)
    guidance = np.zeros((H, W, 1), np.float32)
    guidance[4:16, 6:20] = 1.0  # raise one block, lower the rest
    return g, e, image[0], guidance


def _objective(e, image, guidance, fields, fine=None, weights=None):
    """The refinement objective, from the public losses (REFINE_WEIGHTS, REFINE_COSTS);
    ``fine`` is E's fine-scale copy, when E has one."""
    x, g, f = image[None], guidance[None], fields[None]
    edited = PhotoOperators()([x, f])
    w = {**REFINE_WEIGHTS, **(weights or {})}
    total = (
        w["rec"] * reconstruction_loss(g, e(edited))
        + w["locality"] * locality_loss(x, edited, g, e(x))
        + w["settings"] * settings_loss(f, REFINE_COSTS)
    )
    if fine is not None:
        total += w["fine"] * reconstruction_loss(g, fine(edited))
    return float(total)


def _with_clarity(fields):
    """G's seven fields with a zero clarity field, as refinement starts from them."""
    return np.concatenate([fields, np.zeros_like(fields[..., :1])], axis=-1)


def test_zero_steps_return_gs_fields(parts):
    g, e, image, guidance = parts
    fields = predict_fields(g, image, guidance)
    assert fields.shape == (H, W, 7)
    # G's seven fields and a clarity field of zero, which applies as G's fields do
    same = FieldRefiner(g, e, steps=0)(image, guidance, fields)
    assert np.array_equal(same, _with_clarity(fields))
    np.testing.assert_array_equal(apply_fields(image, same), apply_fields(image, fields))


def test_refinement_sets_clarity_unless_told_not_to(parts):
    g, e, image, guidance = parts
    fields = predict_fields(g, image, guidance)
    refined = FieldRefiner(g, e, steps=10)(image, guidance, fields)
    assert refined.shape == (H, W, 8) and np.abs(refined[..., 7]).max() > 1e-3
    without = FieldRefiner(g, e, steps=10, clarity=False)(image, guidance, fields)
    assert np.array_equal(without[..., 7], np.zeros((H, W), np.float32))
    assert np.abs(without[..., :7] - fields).max() > 1e-3  # G's seven still move
    # fields that already have clarity are refined from it
    again = FieldRefiner(g, e, steps=0)(image, guidance, refined)
    assert np.array_equal(again, refined)
    with pytest.raises(InputError, match="True or False"):
        FieldRefiner(g, e, clarity="yes")


def test_refinement_lowers_its_objective(parts):
    g, e, image, guidance = parts
    fields = predict_fields(g, image, guidance)
    values = [
        _objective(e, image, guidance, FieldRefiner(g, e, steps=n)(image, guidance, fields))
        for n in (0, 5, 20)
    ]
    assert values[2] < values[1] < values[0], values


@pytest.mark.parametrize("stride", [None, 1, 4])
def test_the_correction_is_a_bilinear_field_of_a_coarse_grid(parts, stride):
    g, e, image, guidance = parts  # no guided filter: the correction is the bilinear field
    fields = predict_fields(g, image, guidance)
    refiner = FieldRefiner(g, e, steps=10, stride=stride)
    # by default twice as fine as G's grid
    assert refiner.stride == (max(1, g.field_stride // 2) if stride is None else stride)
    change = refiner(image, guidance, fields) - _with_clarity(fields)
    stride = refiner.stride
    ch, cw = -(-H // stride), -(-W // stride)
    basis = []
    for i in range(ch * cw):
        impulse = np.zeros((1, ch, cw, 1), np.float32)
        impulse.flat[i] = 1.0
        basis.append(np.asarray(BilinearUpsample(stride)(impulse))[0, :H, :W, 0].ravel())
    basis = np.stack(basis, 1)
    coef, *_ = np.linalg.lstsq(basis, change.reshape(H * W, -1), rcond=None)
    residual = change.reshape(H * W, -1) - basis @ coef
    assert np.abs(change).max() > 1e-3  # it moved
    # float32 rounding of the upsample and the sum with G's fields
    assert np.abs(residual).max() < 1e-4 * max(1.0, np.abs(change).max())


def test_refined_edit_is_the_operators_applied_to_the_refined_fields(parts):
    g, e, image, guidance = parts
    refiner = FieldRefiner(g, e, steps=4)
    fields = refiner.fields(image, guidance)
    expected = np.clip(np.asarray(PhotoOperators()([image[None], fields[None]]))[0], 0, 1)
    # the NumPy strip path against keras.ops, both float32 (as in test_operator_head)
    np.testing.assert_allclose(refiner.edit(image, guidance), expected, atol=2e-5)
    np.testing.assert_array_equal(refiner.edit(image, guidance), apply_fields(image, fields))


def test_edit_image_refines_and_strength_zero_still_returns_the_photo(parts):
    g, e, image, guidance = parts
    editor = Editor(g, e)
    photo = (image * 255).round().astype(np.uint8)
    plain = edit_image(editor, photo, guidance=guidance[..., 0])
    refined = edit_image(editor, photo, guidance=guidance[..., 0], refine=10)

    def rec(result):
        return float(reconstruction_loss(guidance[None], e(result["edited"][None] / 255.0)))

    assert rec(refined) < rec(plain)
    same = edit_image(editor, photo, guidance=guidance[..., 0], refine=10, strength=0.0)
    assert np.array_equal(same["edited"], photo)
    residual = Editor(SaGIMGenerator(base_filters=4, depth=1, num_residual_blocks=0), e)
    with pytest.raises(ConfigError, match="operator-head G"):
        edit_image(residual, image, guidance=guidance, refine=2)


def test_refinement_prices_colour_with_its_own_costs(parts):
    g, e, image, guidance = parts
    fields = np.random.default_rng(5).normal(0, 0.5, (H, W, 7)).astype(np.float32)
    x, gd, f = image[None], guidance[None], fields[None]

    def inside(costs):
        return float(FieldRefiner(g, e, costs=costs)._objective(x, gd, f, e(x)))

    # the same float32 losses summed in another order: a few ulps of a value near 1
    assert inside(None) == pytest.approx(_objective(e, image, guidance, fields), rel=1e-5)
    w = REFINE_WEIGHTS["settings"]
    gap = w * float(settings_loss(f, REFINE_COSTS) - settings_loss(f, OPERATOR_COSTS))
    # a difference of two float32 objectives: their rounding, against a gap of about 5
    assert inside(None) - inside(OPERATOR_COSTS) == pytest.approx(gap, rel=1e-4)
    assert REFINE_COSTS["temperature"] > OPERATOR_COSTS["temperature"]
    assert REFINE_COSTS["exposure"] == OPERATOR_COSTS["exposure"]


def test_an_itti_koch_e_adds_its_fine_copy_to_the_objective(parts):
    g, _, image, guidance = parts
    e = IttiKochSaliency()
    fields = np.random.default_rng(6).normal(0, 0.5, (H, W, 7)).astype(np.float32)
    x, gd, f = image[None], guidance[None], fields[None]

    def inside(weights):
        return float(FieldRefiner(g, e, weights=weights)._objective(x, gd, f, e(x)))

    refiner = FieldRefiner(g, e)
    fine = e.fine_copy()
    assert refiner.fine_estimator.get_config() == fine.get_config()
    # the same float32 losses summed in another order: a few ulps of a value near 1
    assert inside(None) == pytest.approx(_objective(e, image, guidance, fields, fine), rel=1e-5)
    assert inside({"fine": 0.0}) == pytest.approx(_objective(e, image, guidance, fields), rel=1e-5)
    assert inside({"fine": 0.0}) < inside(None)
    # a continuous map: the term is left out
    soft = 0.2 + 0.6 * guidance
    assert (
        refiner.fine_weight(guidance) == REFINE_WEIGHTS["fine"] and refiner.fine_weight(soft) == 0
    )
    got = float(refiner._objective(x, soft[None], f, e(x)))
    # the same float32 losses summed in another order: a few ulps of a value near 1
    assert got == pytest.approx(_objective(e, image, soft, fields), rel=1e-5)
    # in refinement: the mask's edit changes with the term, the continuous map's does not
    fields = predict_fields(g, image, guidance)
    with_fine, without = (
        FieldRefiner(g, e, steps=3),
        FieldRefiner(g, e, steps=3, weights={"fine": 0}),
    )
    gap = np.abs(with_fine(image, guidance, fields) - without(image, guidance, fields)).max()
    assert gap > 0.01, gap  # measured 0.26
    # two separate traces of one graph may sum float32 terms in another order (1 ulp seen)
    np.testing.assert_allclose(
        with_fine(image, soft, fields), without(image, soft, fields), rtol=0, atol=1e-6
    )
    # an E without a fine copy (the tiny conv E here, SalGAN) is used alone
    assert FieldRefiner(g, parts[1]).fine_estimator is None
    assert FieldRefiner(g, parts[1]).fine_weight(guidance) == 0


def test_refiner_rejects_bad_input(parts):
    g, e, image, guidance = parts
    fields = predict_fields(g, image, guidance)
    residual = SaGIMGenerator(base_filters=4, depth=1, num_residual_blocks=0)
    with pytest.raises(ConfigError, match="residual head"):
        FieldRefiner(residual, e)
    for steps in (-1, True, 1.5):
        with pytest.raises(InputError, match="refine steps"):
            FieldRefiner(g, e, steps=steps)
    with pytest.raises(InputError, match="learning rate"):
        FieldRefiner(g, e, learning_rate=0.0)
    for stride in (0, 2.0, True, "4"):
        with pytest.raises(InputError, match="refine stride"):
            FieldRefiner(g, e, stride=stride)
    with pytest.raises(ConfigError, match="unknown refine weights.*'adv'"):
        FieldRefiner(g, e, weights={"adv": 1.0})
    for bad in (-1.0, float("nan"), "5", True):
        with pytest.raises(InputError, match="refine weight 'rec'"):
            FieldRefiner(g, e, weights={"rec": bad})
        with pytest.raises(InputError, match="refine cost 'tint'"):
            FieldRefiner(g, e, costs={"tint": bad})
    with pytest.raises(ConfigError, match="unknown refine costs.*'hue'"):
        FieldRefiner(g, e, costs={"hue": 1.0})
    refiner = FieldRefiner(g, e, steps=1)
    with pytest.raises(InputError, match="NaN"):
        refiner(image, guidance, np.full_like(fields, np.nan))
    with pytest.raises(InputError, match="fields of shape"):
        refiner(image, guidance, fields[:-1])
    with pytest.raises(InputError, match=r"need 7 or 8 channels.*got shape \(\d+, \d+, 5\)"):
        refiner(image, guidance, fields[..., :5])
    with pytest.raises(InputError, match="guid"):
        refiner(image, guidance[:-1], fields)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        refiner(image, guidance + 2.0, fields)
    with pytest.raises(ValueError, match="estimator"):
        generator_method(g, "binary", refine_steps=3)
