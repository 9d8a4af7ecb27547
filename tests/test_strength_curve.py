"""The strength curve: operator-rule scaled, G refined with several weightings, one table."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from sagim_tf.baselines.operator_rule import DEFAULT_DEEMPHASIZE, DEFAULT_EMPHASIZE, operator_rule
from sagim_tf.evaluation.records import load_records
from sagim_tf.utils.errors import ConfigError, InputError
from sagim_tf.workflows import strength_curve as sc
from tests.helpers import (
    load_script,
    nudge_operator_head,
    tiny_demo_folder,
    tiny_estimator,
    tiny_operator_g,
)
from tests.sam_helpers import contrast_estimator


def _photo_and_mask(seed=0):
    rng = np.random.default_rng(seed)
    image = rng.uniform(0.2, 0.8, (24, 32, 3)).astype(np.float32)
    mask = np.zeros((24, 32, 1), np.float32)
    mask[6:18, 4:14] = 1.0
    return image, mask


def test_rule_settings_scale_ev_linearly_and_factors_as_powers():
    assert sc.rule_settings(1) == (DEFAULT_EMPHASIZE, DEFAULT_DEEMPHASIZE)
    up, down = sc.rule_settings(0)
    assert up == down == {"ev": 0.0, "saturation": 1.0, "contrast": 1.0}
    up, down = sc.rule_settings(2)
    assert up["ev"] == 2 * DEFAULT_EMPHASIZE["ev"] and down["ev"] == 2 * DEFAULT_DEEMPHASIZE["ev"]
    # a power of a float: equal to the square up to rounding in the last bits
    assert up["saturation"] == pytest.approx(DEFAULT_EMPHASIZE["saturation"] ** 2, rel=1e-12)
    assert down["contrast"] == pytest.approx(DEFAULT_DEEMPHASIZE["contrast"] ** 2, rel=1e-12)


def test_rule_method_grows_with_its_scale_and_scale_one_is_the_rule():
    image, mask = _photo_and_mask()
    edits = {s: sc.rule_method(s)(image, mask, None) for s in (0.0, 1.0, 2.0)}
    # scale 0: every operator at identity; float32 rounding of x + 0 * (...) only
    np.testing.assert_allclose(edits[0.0], image, atol=1e-6)
    np.testing.assert_array_equal(edits[1.0], operator_rule(image, mask))
    change = {s: float(np.mean((e - image) ** 2)) for s, e in edits.items()}
    assert change[0.0] < change[1.0] < change[2.0]
    inside = mask[..., 0] > 0.5
    assert edits[2.0][inside].mean() > edits[1.0][inside].mean() > image[inside].mean()


def test_bad_scales_and_weightings_are_refused_before_any_edit():
    for bad in (-0.5, 3.5, float("nan"), "strong", True, None):
        with pytest.raises(InputError, match="rule scale"):
            sc.rule_settings(bad)
    g, e = tiny_operator_g(), tiny_estimator()
    with pytest.raises(ConfigError, match="no rule scales"):
        sc.curve_methods(g, e, (), ())
    with pytest.raises(ConfigError, match="given twice"):
        sc.curve_methods(g, e, (1,), ({"rec": 20}, {"rec": 20.0}))
    with pytest.raises(ConfigError, match="unknown refine weights"):
        sc.curve_methods(g, e, (1,), ({"adversarial": 1},))
    with pytest.raises(InputError, match="refine weight 'locality'"):
        sc.curve_methods(g, e, (1,), ({"locality": -1},))


def test_curve_scores_every_method_under_every_judge(tiny_sam):
    data, spec = tiny_sam
    records = load_records(data, "test")[:2]
    g = nudge_operator_head(tiny_operator_g(), seed=3, kernel_std=0.1, bias_std=0.2)
    e = tiny_estimator(seed=1)
    methods = sc.curve_methods(g, e, (0.0, 1.0), ({}, {"rec": 20, "locality": 10}), 2)
    assert list(methods) == [
        "rule x0",
        "rule x1",
        "G",
        "G refined (default)",
        "G refined (rec=20,locality=10)",
    ]
    judges = {"contrast": contrast_estimator(), "tiny": e}
    curve = sc.strength_curve(records, methods, judges)
    assert list(curve) == list(methods)
    for row in curve.values():
        assert set(row) == {"psnr", "colour_cast_outside", "non_affine", "contrast", "tiny"}
        assert all(0.0 <= v <= 100.0 for j in judges for v in row[j])
    # the identity rule moves no saliency, so no image can pass C2 (O_low up, O_high down)
    assert curve["rule x0"]["contrast"][1] == 0.0 and curve["rule x0"]["tiny"][1] == 0.0
    assert curve["rule x1"]["psnr"] < curve["rule x0"]["psnr"]
    # refinement changes the edit: a different PSNR than G alone's
    assert curve["G refined (rec=20,locality=10)"]["psnr"] != curve["G"]["psnr"]
    table = sc.format_curve(curve, list(judges)).splitlines()
    assert table[0].startswith("| method | PSNR (dB) |") and "contrast C1/C2" in table[0]
    assert len(table) == 2 + len(methods) and table[3].startswith("| rule x1 |")


def test_script_checks_its_input_and_parses_weightings(tmp_path, capsys):
    script = load_script("strength_curve")
    assert script.parse_weighting("rec=20, locality=10") == {"rec": 20.0, "locality": 10.0}
    assert script.parse_weighting("") == {}
    for bad in ("rec", "rec=high"):
        with pytest.raises(Exception, match="rec"):
            script.parse_weighting(bad)
    assert script.main(["--demo", str(tmp_path)]) == 2
    assert "generator.keras not found" in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_script_writes_the_curve_of_a_demo_folder(tmp_path, tiny_sam, capsys):
    data, _ = tiny_sam
    demo = tiny_demo_folder(tmp_path, data)
    argv = ["--demo", str(demo), "--rule-scale", "1", "--refine", "rec=20", "--limit", "2"]
    argv += ["--refine-steps", "2"]
    assert load_script("strength_curve").main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 test images" in printed and "| G refined (rec=20) |" in printed
    saved = json.loads((demo / "strength_curve.json").read_text())
    assert saved["n_images"] == 2 and list(saved["methods"]) == [
        "rule x1",
        "G",
        "G refined (rec=20)",
    ]
