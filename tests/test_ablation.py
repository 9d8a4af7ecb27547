"""scripts/ablation.py and sagim_tf.workflows.ablation: variants, reuse, Table 2 output."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from sagim_tf.training.config import load_config, save_config
from sagim_tf.utils.errors import ConfigError
from sagim_tf.workflows.ablation import (
    VARIANTS,
    finished_model,
    run_ablation,
    variant_configs,
)
from tests.sam_helpers import TEST_SPEC, tiny_build

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = list(VARIANTS)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablation-data")
    _, out, _ = tiny_build(str(root), n_images=24, train=4, test=3)
    return out


def _config_file(tmp_path, data, **extra):
    doc = {
        "run_dir": str(tmp_path / "runs"),
        "estimator": "itti-koch",
        "data": {"dir": data, "image_size": [64, 48], "val_split": "", "shuffle_buffer": 4},
        "generator": {"base_filters": 4, "depth": 2, "num_residual_blocks": 1},
        "discriminator": {"base_filters": 4, "num_layers": 2},
        "features": {"layers": ["block1_conv1"]},
        "losses": {"color_kernel_size": 5},
        "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "image_every_steps": 0,
                  "verbose": 0},
    }
    for key, value in extra.items():
        doc[key] = value
    path = tmp_path / "ablation.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_variant_configs(tmp_path, data):
    cfg = load_config(_config_file(tmp_path, data))
    configs = variant_configs(cfg)
    assert list(configs) == ["full", "no-cycle", "no-adv", "no-color"]
    assert configs["full"].losses == cfg.losses
    assert configs["no-cycle"].losses.cycle == 0 and configs["no-cycle"].losses.adv == cfg.losses.adv
    assert configs["no-adv"].losses.adv == 0 and configs["no-color"].losses.color == 0
    assert configs["no-color"].run_dir == os.path.join(cfg.run_dir, "no-color")
    with pytest.raises(ConfigError, match="unknown ablation variant 'no-rec'"):
        variant_configs(cfg, ["full", "no-rec"])


def test_reuses_finished_runs_and_writes_table2(tmp_path, data):
    """Pre-made finished runs are reused (no training); the tables come out."""
    from tests.helpers import tiny_sagim

    cfg = load_config(_config_file(tmp_path, data))
    for i, (name, vcfg) in enumerate(variant_configs(cfg).items()):
        os.makedirs(vcfg.run_dir)
        save_config(vcfg, os.path.join(vcfg.run_dir, "config.yaml"))
        tiny_sagim(seed=i).save(os.path.join(vcfg.run_dir, "sagim.keras"))
        assert finished_model(vcfg) == os.path.join(vcfg.run_dir, "sagim.keras")
    said = []
    summary = run_ablation(cfg, limit=2, judges=f"{TEST_SPEC},spectral-residual", progress=False,
                           say=said.append)
    assert all("reusing the finished run" in s for s in said) and len(said) == 4
    out = os.path.join(cfg.run_dir, "ablation")
    text = open(os.path.join(out, "ablation.md")).read()
    header = [c.strip() for c in text.split("## Guidance Consistency (%)")[1].strip().splitlines()[0].strip("|").split("|")]
    assert header == ["Guidance Consistency (%)"] + NAMES
    for judge in (TEST_SPEC, "spectral-residual"):
        assert f"| {judge} w/ C1 |" in text and f"| {judge} w/ C2 |" in text
    assert "w/o Lcycle" in text  # the paper's names, and its Table 2 for reference
    doc = json.load(open(os.path.join(out, "results.json")))
    assert doc["methods"] == NAMES and len(doc["rows"]) == 2 * 4
    assert "## Ablation (Table 2 layout)" in open(os.path.join(out, "results.md")).read()
    assert all(os.path.isfile(os.path.join(out, "examples", f"{n}.png")) for n in NAMES)
    assert summary["table"].splitlines()[0].startswith("| Guidance Consistency (%) | full |")
    # A changed config (another epoch count) is not "finished": it would train again.
    longer = variant_configs(load_config(_config_file(tmp_path, data), ["train.epochs=2"]))
    assert finished_model(longer["full"]) is None


def test_script_errors(tmp_path):
    code = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "ablation.py"),
                           "--config", str(tmp_path / "missing.yaml")],
                          capture_output=True, text=True, cwd=ROOT)
    assert code.returncode == 2 and "does not exist" in code.stderr


@pytest.mark.slow
def test_trains_four_variants(tmp_path, data):
    """The whole thing through the script: 4 tiny runs trained, evaluated, Table 2 written."""
    config = _config_file(tmp_path, data)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "ablation.py"), "--config", config,
         "--limit", "2", "--out", str(out), "--no-progress", "--judges", "itti-koch,spectral-residual"],
        capture_output=True, text=True, cwd=ROOT, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in NAMES:
        assert os.path.isfile(tmp_path / "runs" / name / "sagim.keras")
        saved = yaml.safe_load(open(tmp_path / "runs" / name / "config.yaml"))
        if VARIANTS[name]:
            assert saved["losses"][VARIANTS[name]] == 0
    text = (out / "ablation.md").read_text()
    assert "| Guidance Consistency (%) | full | no-cycle | no-adv | no-color |" in text
    assert "| itti-koch w/ C1 |" in text and "| spectral-residual w/ C2 |" in text
    assert "| Guidance Consistency (%) | full |" in proc.stdout
