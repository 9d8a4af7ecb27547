"""The demo end to end, shrunk: tiny set, tiny G, a few seconds of training."""

import json
import logging
import os

from sagim_tf.cli import main
from sagim_tf.training.experiments import get_experiment
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


def test_departures_give_the_run_step_count():
    text = demo.demo_departures(get_experiment(demo.DEMO_EXPERIMENT), 1234)
    assert "1234 G steps" in text and "~" not in text
    assert "5:5:1:9:5" in text and "content weight is 20 rather than 5" in text


def test_demo_runs_end_to_end_and_reports(tmp_path, caplog):
    out = tmp_path / "demo"
    with caplog.at_level(logging.INFO, logger="sagim_tf.workflows.demo"):
        result = demo.run_demo(
            out,
            minutes=0.02,
            images=40,
            image_size=(48, 64),
            test_images=6,
            base_filters=4,
            photo_max_side=64,
        )
    stages = [m for m in caplog.messages if m.startswith("[")]
    assert [m[:5] for m in stages] == ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"]
    paths = result["paths"]
    for key in ("report", "trained G", "full model (G, D, E)", "evaluation tables"):
        assert os.path.isfile(paths[key]), key
    report = open(paths["report"]).read()
    for needle in (
        "itti-koch C1",
        "spectral-residual C2",
        "fine-grained C1",
        "| sagim |",
        "| wsr |",
        "| hag |",
        "| oha |",
        "astronaut",
        "rec_loss",
    ):
        assert needle in report, needle
    # The step count in the report is the run's own, not a fixed figure.
    assert f"this run's {result['g_steps']} G steps" in report
    assert f"- G steps: {result['g_steps']} (batch 4, 64x48, width x height)" in report
    assert set(result["aggregates"]) >= {"identity", "sagim", "sagim-binary", "wsr", "hag", "oha"}
    assert len(result["photos"]) == 4
    for row in result["photos"]:
        assert os.path.isfile(row["figure"])
        assert 0.0 <= row["emphasized_after"] <= 1.0
    saved = json.loads((out / "demo.json").read_text())
    assert saved["g_steps"] == result["g_steps"] >= 1
    assert saved["config"]["data"]["image_size"] == {"height": 48, "width": 64}
    assert os.listdir(os.path.join(out, "run", "logs"))


def test_demo_rejects_bad_options(capsys):
    assert main(["demo", "--minutes", "0"]) == 2
    assert "--minutes" in capsys.readouterr().err
