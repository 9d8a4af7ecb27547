"""The demo end to end, shrunk: tiny set, tiny G, a few seconds of training."""

import json
import os

from sagim_tf.cli import main


def test_demo_runs_end_to_end_and_reports(tmp_path, monkeypatch):
    from sagim_tf.workflows import demo

    out = tmp_path / "demo"
    result = demo.run_demo(out, minutes=0.02, images=40, size=(64, 48), test_images=6,
                           base_filters=4, photo_max_side=64, log=lambda m: None)
    paths = result["paths"]
    for key in ("report", "trained G", "full model (G, D, E)", "evaluation tables"):
        assert os.path.isfile(paths[key]), key
    report = open(paths["report"]).read()
    for needle in ("itti-koch C1", "spectral-residual C2", "fine-grained C1", "| sagim |",
                   "| wsr |", "| hag |", "| oha |", "astronaut", "rec_loss"):
        assert needle in report, needle
    assert set(result["aggregates"]) >= {"identity", "sagim", "sagim-binary", "wsr", "hag", "oha"}
    assert len(result["photos"]) == 4
    for row in result["photos"]:
        assert os.path.isfile(row["figure"])
        assert 0.0 <= row["emphasized_after"] <= 1.0
    saved = json.loads((out / "demo.json").read_text())
    assert saved["g_steps"] >= 1
    assert os.listdir(os.path.join(out, "run", "logs"))


def test_demo_rejects_bad_options(capsys):
    assert main(["demo", "--minutes", "0"]) == 2
    assert "--minutes" in capsys.readouterr().err
