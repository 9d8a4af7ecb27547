"""The judge in the loop: G refined against E and against the spectral-residual copy."""

from __future__ import annotations

import json
import os

import pytest

from sagim_tf.evaluation.records import load_records
from sagim_tf.utils.errors import ConfigError, InputError
from sagim_tf.workflows import judge_bound as jb
from sagim_tf.workflows.strength_curve import strength_curve
from tests.helpers import (
    load_script,
    nudge_operator_head,
    tiny_demo_folder,
    tiny_estimator,
    tiny_operator_g,
)
from tests.sam_helpers import contrast_estimator


def test_the_two_refinements_differ_only_in_the_estimator(tiny_sam):
    data, _ = tiny_sam
    records = load_records(data, "test")[:2]
    g = nudge_operator_head(tiny_operator_g(), seed=3, kernel_std=0.1, bias_std=0.2)
    methods = jb.bound_methods(g, tiny_estimator(seed=1), refine_steps=2)
    assert list(methods) == [jb.AGAINST_E, jb.AGAINST_JUDGE, "hag"]
    r = records[0]
    edits = {n: m(r["image"], r["guidance_binary"], r["guidance"]) for n, m in methods.items()}
    assert edits[jb.AGAINST_E].shape == r["image"].shape
    # the same G and steps, another estimator: another edit
    assert abs(edits[jb.AGAINST_E] - edits[jb.AGAINST_JUDGE]).max() > 1e-4
    table = strength_curve(records, methods, {"contrast": contrast_estimator()})
    assert list(table) == list(methods)
    assert all(0.0 <= v <= 100.0 for row in table.values() for v in row["contrast"])


def test_bad_settings_are_refused_before_any_edit():
    g, e = tiny_operator_g(), tiny_estimator()
    with pytest.raises(ConfigError, match="refine steps must be >= 1"):
        jb.bound_methods(g, e, refine_steps=0)
    with pytest.raises(InputError, match="refine steps"):
        jb.bound_methods(g, e, refine_steps=-1)
    with pytest.raises(ConfigError, match="unknown baseline"):
        jb.bound_methods(g, e, baselines=("hagg",))
    with pytest.raises(ConfigError, match="residual head"):
        jb.bound_methods(tiny_operator_g(head="residual"), e)


def test_script_checks_its_input(tmp_path, capsys):
    script = load_script("judge_bound")
    assert script.main(["--demo", str(tmp_path)]) == 2
    assert "generator.keras not found" in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_script_writes_the_table_of_a_demo_folder(tmp_path, tiny_sam, capsys):
    data, _ = tiny_sam
    demo = tiny_demo_folder(tmp_path, data)
    argv = ["--demo", str(demo), "--split", "train", "--limit", "2", "--refine-steps", "2"]
    assert load_script("judge_bound").main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 train images" in printed and f"| {jb.AGAINST_JUDGE} |" in printed
    saved = json.loads((demo / "judge_bound.json").read_text())
    assert saved["split"] == "train" and saved["n_images"] == 2
    assert list(saved["methods"]) == [jb.AGAINST_E, jb.AGAINST_JUDGE, "hag"]
