"""scripts/ablation.py and sagim_tf.workflows.ablation: variants, reuse, Table 2 output."""

import json
import logging
import os
import subprocess
import sys

import pytest
import yaml

from sagim_tf.training.config import load_config, save_config
from sagim_tf.training.experiments import ABLATION_VARIANTS
from sagim_tf.utils.errors import ConfigError
from sagim_tf.workflows.ablation import finished_model, run_ablation, variant_configs
from tests.helpers import tiny_sagim
from tests.sam_helpers import TEST_SPEC
from tests.train_helpers import IMAGE_SIZE, ROOT, subprocess_env

NAMES = list(ABLATION_VARIANTS)


def _config_file(tmp_path, data_dir, **extra):
    doc = {
        "run_dir": str(tmp_path / "runs"),
        "estimator": "itti-koch",
        "data": {
            "dir": data_dir,
            "image_size": {"height": IMAGE_SIZE[0], "width": IMAGE_SIZE[1]},
            "val_split": "",
            "shuffle_buffer": 4,
        },
        "generator": {"base_filters": 4, "depth": 2, "num_residual_blocks": 1},
        "discriminator": {"base_filters": 4, "num_layers": 2},
        "features": {"layers": ["block1_conv1"]},
        "losses": {"color_kernel_size": 5},
        "train": {
            "epochs": 1,
            "steps_per_epoch": 2,
            "batch_size": 2,
            "image_every_steps": 0,
            "verbose": 0,
        },
    }
    doc.update(extra)
    path = tmp_path / "ablation.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_variant_configs(tmp_path, tiny_sam):
    cfg = load_config(_config_file(tmp_path, tiny_sam[0]))
    configs = variant_configs(cfg)
    assert list(configs) == ["full", "no-cycle", "no-adv", "no-color"]
    assert configs["full"].losses == cfg.losses
    assert configs["no-cycle"].losses.cycle == 0
    assert configs["no-cycle"].losses.adv == cfg.losses.adv
    assert configs["no-adv"].losses.adv == 0 and configs["no-color"].losses.color == 0
    assert configs["no-color"].run_dir == os.path.join(cfg.run_dir, "no-color")
    with pytest.raises(ConfigError, match="unknown ablation variant 'no-rec'"):
        variant_configs(cfg, ["full", "no-rec"])


def test_experiment_and_file_resolve_like_train(tmp_path, tiny_sam):
    """run_ablation(path, experiment=...) resolves as `sagim train` does; bad names fail early."""
    path = _config_file(tmp_path, tiny_sam[0])
    with pytest.raises(ConfigError, match="unknown experiment 'nope'"):
        run_ablation(path, experiment="nope")
    with pytest.raises(ConfigError, match="apply only to a config file path"):
        run_ablation(load_config(path), experiment="paper")


def test_reuses_finished_runs_and_writes_table2(tmp_path, tiny_sam, caplog):
    """Pre-made finished runs are reused (no training); the tables come out."""
    cfg = load_config(_config_file(tmp_path, tiny_sam[0]))
    for i, vcfg in enumerate(variant_configs(cfg).values()):
        os.makedirs(vcfg.run_dir)
        save_config(vcfg, os.path.join(vcfg.run_dir, "config.yaml"))
        tiny_sagim(seed=i).save(os.path.join(vcfg.run_dir, "sagim.keras"))
        assert finished_model(vcfg) == os.path.join(vcfg.run_dir, "sagim.keras")
    with caplog.at_level(logging.INFO, logger="sagim_tf.workflows.ablation"):
        summary = run_ablation(
            cfg, limit=2, judges=f"{TEST_SPEC},spectral-residual", progress=False
        )
    reused = [m for m in caplog.messages if "reusing the finished run" in m]
    assert len(reused) == 4
    assert not [m for m in caplog.messages if "training in" in m]
    out = os.path.join(cfg.run_dir, "ablation")
    text = open(os.path.join(out, "ablation.md")).read()
    table = text.split("## Guidance Consistency (%)")[1].strip().splitlines()[0]
    header = [c.strip() for c in table.strip("|").split("|")]
    assert header == ["Guidance Consistency (%)"] + NAMES
    for judge in (TEST_SPEC, "spectral-residual"):
        assert f"| {judge} w/ C1 |" in text and f"| {judge} w/ C2 |" in text
    assert "w/o Lcycle" in text  # the paper's names, and its Table 2 for reference
    assert f"({IMAGE_SIZE[1]}x{IMAGE_SIZE[0]})" in text  # the notes give width x height
    doc = json.load(open(os.path.join(out, "results.json")))
    assert doc["methods"] == NAMES and len(doc["rows"]) == 2 * 4
    assert "## Ablation (Table 2 layout)" in open(os.path.join(out, "results.md")).read()
    assert all(os.path.isfile(os.path.join(out, "examples", f"{n}.png")) for n in NAMES)
    assert summary["table"].splitlines()[0].startswith("| Guidance Consistency (%) | full |")
    # A changed config (another epoch count) is not "finished": it would train again.
    path = _config_file(tmp_path, tiny_sam[0])
    longer = variant_configs(load_config(path, ["train.epochs=2"]))
    assert finished_model(longer["full"]) is None


def test_script_errors(tmp_path):
    script = os.path.join(ROOT, "scripts", "ablation.py")
    code = subprocess.run(
        [sys.executable, script, "--config", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=subprocess_env(),
    )
    assert code.returncode == 2 and "does not exist" in code.stderr
    code = subprocess.run(
        [sys.executable, script], capture_output=True, text=True, cwd=ROOT, env=subprocess_env()
    )
    assert code.returncode == 2 and "--experiment NAME, --config FILE, or both" in code.stderr


@pytest.mark.slow
def test_trains_four_variants(tmp_path, tiny_sam):
    """The whole thing through the script: 4 tiny runs trained, evaluated, Table 2 written."""
    config = _config_file(tmp_path, tiny_sam[0])
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "scripts", "ablation.py"),
            "--config",
            config,
            "--limit",
            "2",
            "--out",
            str(out),
            "--no-progress",
            "--judges",
            "itti-koch,spectral-residual",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
        env=subprocess_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no-color: training in" in proc.stderr  # progress is logged to stderr
    for name in NAMES:
        assert os.path.isfile(tmp_path / "runs" / name / "sagim.keras")
        saved = yaml.safe_load(open(tmp_path / "runs" / name / "config.yaml"))
        if ABLATION_VARIANTS[name]:
            assert saved["losses"][ABLATION_VARIANTS[name]] == 0
    text = (out / "ablation.md").read_text()
    assert "| Guidance Consistency (%) | full | no-cycle | no-adv | no-color |" in text
    assert "| itti-koch w/ C1 |" in text and "| spectral-residual w/ C2 |" in text
    assert "| Guidance Consistency (%) | full |" in proc.stdout
