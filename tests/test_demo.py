"""The demo end to end, shrunk: tiny set, tiny G, a few seconds of training."""

import dataclasses
import json
import logging
import os

import pytest

from sagim_tf.cli import main
from sagim_tf.training.experiments import get_experiment
from sagim_tf.utils.errors import ConfigError
from sagim_tf.workflows import demo


def test_demo_config_is_the_registered_experiment(tmp_path):
    cfg = demo.demo_config(str(tmp_path), image_size=(48, 64), seed=3, base_filters=4, minutes=2)
    registered = get_experiment(demo.DEMO_EXPERIMENT)
    assert cfg.losses == registered.losses and cfg.features == registered.features
    assert cfg.data.guidance == registered.data.guidance == "mixed"
    assert cfg.data.image_size == (48, 64)  # (height, width)
    assert (cfg.train.seed, cfg.generator.base_filters, cfg.train.time_budget_minutes) == (
        3,
        4,
        2.0,
    )
    assert cfg.run_dir == os.path.join(str(tmp_path), "run")
    assert cfg.data.dir == os.path.join(str(tmp_path), "sam")
    assert cfg.generator.head == registered.generator.head == "operators"
    assert cfg.losses.locality > 0 and cfg.losses.settings > 0
    assert cfg.generator.field_guide_radius > 0
    # the comparison run: the same setup, only the head, its folder and the settings prior
    # (there are no settings with the residual head) differ
    residual = demo.demo_config(str(tmp_path), image_size=(48, 64), head="residual")
    assert residual.generator.head == "residual" and residual.losses.settings == 0.0
    assert dataclasses.replace(residual.losses, settings=cfg.losses.settings) == cfg.losses
    assert residual.run_dir == os.path.join(str(tmp_path), "residual")
    with pytest.raises(ConfigError, match="head"):
        demo.demo_config(str(tmp_path), head="pixels")


def _aggregate(c1, non_affine_share, cast, psnr):
    judges = {j: {"c1": c1} for j in demo.UNSEEN_JUDGES}
    return {
        "judges": judges,
        "non_affine": non_affine_share,
        "colour_cast_outside": cast,
        "psnr": psnr,
    }


def test_compare_heads_keeps_the_operator_head_unless_it_loses_too_much_c1():
    res = _aggregate(80.0, 0.02, 10.0, 20.0)
    close = demo.compare_heads({"sagim": _aggregate(76.0, 0.004, 4.0, 22.5), "sagim-residual": res})
    assert close["pick"] == "operators" and "4.0 points below" in close["reason"]
    assert close["c1_drop"] == 4.0 and close["psnr_gain"] == 2.5
    # ratios of the operator head's realism measures to the residual head's (float division)
    assert abs(close["non_affine_ratio"] - 0.2) < 1e-12 and abs(close["cast_ratio"] - 0.4) < 1e-12
    far = demo.compare_heads({"sagim": _aggregate(70.0, 0.004, 4.0, 22.5), "sagim-residual": res})
    assert far["pick"] == "residual" and "10.0 points below" in far["reason"]


def test_the_photos_head_is_chosen_on_the_edits_the_photos_get():
    res = _aggregate(80.0, 0.02, 10.0, 20.0)
    faint = _aggregate(70.0, 0.004, 4.0, 22.5)  # G alone: 10 points below
    aggregates = {"sagim": faint, "sagim-residual": res}
    alone = demo.compare_both_heads(aggregates)
    assert "refined" not in alone and alone["photos"]["pick"] == "residual"
    refined = _aggregate(85.0, 0.004, 4.0, 22.5)
    both = demo.compare_both_heads({**aggregates, demo.REFINED_METHOD: refined})
    assert both["pick"] == "residual"  # G alone's own comparison is kept as it was
    assert both["photos"] == {"pick": "operators", "reason": both["refined"]["reason"]}
    assert "5.0 points above or at" in both["photos"]["reason"]


def test_departures_give_the_run_step_count():
    text = demo.demo_departures(get_experiment(demo.DEMO_EXPERIMENT), 1234)
    assert "1234 G steps" in text and "~" not in text
    assert "5:5:1:9:5" in text and "content weight is 20 rather than 5" in text


# Both heads train (about 35 s more: a second model's traces) only in the slow run; the
# default run covers the one-head path end to end, and the head comparison's logic is
# tested above on given aggregates.
@pytest.mark.parametrize(
    "heads",
    [("operators",), pytest.param(("operators", "residual"), marks=pytest.mark.slow)],
    ids=["operator-head", "both-heads"],
)
def test_demo_runs_end_to_end_and_reports(tmp_path, caplog, heads):
    out = tmp_path / "demo"
    both = len(heads) == 2
    with caplog.at_level(logging.INFO, logger="sagim_tf.workflows.demo"):
        result = demo.run_demo(
            out,
            minutes=0.02,
            images=40,
            image_size=(48, 64),
            test_images=6,
            base_filters=4,
            photo_max_side=64,
            heads=heads,
        )
    if both:
        assert result["head"] in ("operators", "residual") and result["comparison"] is not None
    else:
        assert result["head"] == "operators" and result["comparison"] is None
    stages = [m for m in caplog.messages if m.startswith("[")]
    # training is one stage per head: the operator head, then the residual head
    assert [m[:5] for m in stages] == ["[1/5]", "[2/5]"] + ["[3/5]"] * len(heads) + [
        "[4/5]",
        "[5/5]",
    ]
    paths = result["paths"]
    for key in ("report", "trained G", "full model (G, D, E)", "evaluation tables"):
        assert os.path.isfile(paths[key]), key
    report = open(paths["report"]).read()
    needles = [
        "itti-koch C1",
        "spectral-residual C2",
        "fine-grained C1",
        "| sagim |",
        "| operator-rule |",
        "non-affine",
        "| sagim-refined |",
        "| wsr |",
        "| hag |",
        "| oha |",
        "astronaut",
        "rec_loss",
    ]
    if both:
        needles += ["| sagim-residual |", "Operator head against residual head"]
        needles += ["by 20 steps against E"]
    for needle in needles:
        assert needle in report, needle
    assert ("| sagim-residual |" in report) == both
    # The step count in the report is the run's own, not a fixed figure.
    assert f"this run's {result['g_steps']} G steps" in report
    assert f"- G steps: {result['g_steps']} (batch 4, 64x48, width x height)" in report
    methods = {"identity", "sagim", "sagim-binary", "sagim-refined", "sagim-refined-binary"}
    methods |= {"wsr", "hag", "oha", "operator-rule"}
    residual = {"sagim-residual", "sagim-residual-binary"}
    assert set(result["aggregates"]) >= methods
    assert (set(result["aggregates"]) >= residual) == both
    assert len(result["photos"]) == 4
    for row in result["photos"]:
        assert os.path.isfile(row["figure"])
        assert 0.0 <= row["emphasized_after"] <= 1.0
    saved = json.loads((out / "demo.json").read_text())
    assert saved["g_steps"] == result["g_steps"] >= 1
    assert saved["config"]["data"]["image_size"] == {"height": 48, "width": 64}
    assert os.listdir(os.path.join(out, "run", "logs"))
    assert os.path.isfile(os.path.join(out, "residual", "sagim.keras")) == both
    assert set(saved["g_steps_by_head"]) == set(heads)
    assert all(steps >= 1 for steps in saved["g_steps_by_head"].values())


def test_demo_rejects_bad_options(capsys):
    assert main(["demo", "--minutes", "0"]) == 2
    assert "--minutes" in capsys.readouterr().err
    assert main(["demo", "--heads", "residual"]) == 2
    assert "--heads" in capsys.readouterr().err
    assert main(["demo", "--refine-steps", "-1", "--out", "never"]) == 2
    assert "refine steps" in capsys.readouterr().err
