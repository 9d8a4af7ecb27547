"""ExperimentConfig: defaults, YAML/JSON files, dotted overrides, clear errors, round trip, CLI."""

import dataclasses
import json
import os

import pytest
import yaml

from sagim_tf.training.config import ExperimentConfig, load_config, save_config, to_dict
from sagim_tf.utils.errors import ConfigError
from tests.train_helpers import run_sagim


def _write(path, data, fmt="yaml"):
    with open(path, "w", encoding="utf-8") as f:
        if fmt == "json":
            json.dump(data, f)
        else:
            yaml.safe_dump(data, f)
    return str(path)


def test_defaults_are_complete_and_frozen():
    cfg = load_config()
    assert cfg == ExperimentConfig()
    assert cfg.train.precision == "float32" and cfg.train.distribution == "none"
    assert cfg.train.jit_compile is False
    assert (cfg.losses.rec, cfg.losses.content, cfg.losses.color, cfg.losses.cycle,
            cfg.losses.adv) == (5.0, 5.0, 1.0, 9.0, 5.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.epochs = 3
    assert load_config(None) == load_config(None, [])


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_load_yaml_and_json(tmp_path, fmt):
    data = {"run_dir": "runs/x", "data": {"image_size": [64, 48], "flip": False},
            "losses": {"adv": 0}, "g_optimizer": {"name": "adamw", "learning_rate": 2e-4},
            "train": {"epochs": 7, "precision": "bfloat16", "distribution": "mirrored"}}
    path = _write(tmp_path / f"c.{fmt}", data, fmt)
    cfg = load_config(path)
    assert cfg.run_dir == "runs/x"
    assert cfg.data.image_size == (64, 48) and cfg.data.flip is False
    assert cfg.losses.adv == 0.0 and isinstance(cfg.losses.adv, float)
    assert cfg.g_optimizer.name == "adamw" and cfg.g_optimizer.learning_rate == 2e-4
    assert cfg.d_optimizer == ExperimentConfig().d_optimizer
    assert (cfg.train.epochs, cfg.train.precision, cfg.train.distribution) == (7, "bfloat16", "mirrored")
    assert cfg.train.batch_size == 4  # untouched defaults stay


def test_exponent_numbers_without_a_dot(tmp_path):
    # YAML 1.1 (PyYAML) reads 1e-4 as a string; float fields still take it, from a file
    # and from an override.
    path = tmp_path / "c.yaml"
    path.write_text("g_optimizer:\n  learning_rate: 1e-4\n")
    assert load_config(str(path)).g_optimizer.learning_rate == 1e-4
    cfg = load_config(None, ["d_optimizer.learning_rate=2e-4", "losses.adv=5E-1"])
    assert cfg.d_optimizer.learning_rate == 2e-4 and cfg.losses.adv == 0.5
    with pytest.raises(ConfigError, match="finite"):
        load_config(None, ["g_optimizer.learning_rate=nan"])


def test_empty_file_is_the_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(str(path)) == ExperimentConfig()


def test_dotted_overrides(tmp_path):
    path = _write(tmp_path / "c.yaml", {"train": {"epochs": 5}, "features": {"weights": "imagenet"}})
    cfg = load_config(path, [
        "train.epochs=3", "data.image_size=[32, 24]", "features.weights=null",
        "features.layers=[block1_conv1, block2_conv1]", "train.jit_compile=true",
        "g_optimizer.clipnorm=1.5", "run_dir=runs/y", "data.val_split=",
    ])
    assert cfg.train.epochs == 3
    assert cfg.data.image_size == (32, 24)
    assert cfg.features.weights is None
    assert cfg.features.layers == ("block1_conv1", "block2_conv1")
    assert cfg.train.jit_compile is True
    assert cfg.g_optimizer.clipnorm == 1.5
    assert cfg.run_dir == "runs/y"
    assert cfg.data.val_split == ""
    # The last override of a key wins.
    assert load_config(None, ["train.epochs=3", "train.epochs=4"]).train.epochs == 4


@pytest.mark.parametrize("data, overrides, key", [
    ({"trian": {"epochs": 1}}, [], "trian"),
    ({"train": {"epochz": 1}}, [], "train.epochz"),
    ({}, ["train.epochz=1"], "train.epochz"),
    ({}, ["data.dirr=x"], "data.dirr"),
    ({}, ["nope=1"], "nope"),
])
def test_unknown_keys_are_named(tmp_path, data, overrides, key):
    path = _write(tmp_path / "c.yaml", data)
    with pytest.raises(ConfigError, match="unknown") as info:
        load_config(path, overrides)
    assert key in str(info.value)


@pytest.mark.parametrize("override, key", [
    ("train.epochs=three", "train.epochs"),
    ("train.epochs=1.5", "train.epochs"),
    ("train.jit_compile=1", "train.jit_compile"),
    ("train.batch_size=true", "train.batch_size"),
    ("g_optimizer.learning_rate=fast", "g_optimizer.learning_rate"),
    ("data.image_size=64", "data.image_size"),
    ("estimator=3", "estimator"),
    ("train=5", "train"),
    ("features.weights=[1]", "features.weights"),
])
def test_wrong_types_are_named(override, key):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert str(info.value).startswith(key + ":") or f"{key}:" in str(info.value)


@pytest.mark.parametrize("override, key", [
    ("train.precision=float16", "train.precision"),
    ("train.precision=mixed_bfloat16", "train.precision"),
    ("train.distribution=tpu", "train.distribution"),
    ("g_optimizer.name=rmsprop", "g_optimizer.name"),
    ("data.guidance=soft", "data.guidance"),
    ("train.epochs=0", "train.epochs"),
    ("losses.adv=-1", "losses.adv"),
    ("losses.color_kernel_size=4", "losses.color_kernel_size"),
    ("data.image_size=[4, 4]", "data.image_size"),
    ("d_optimizer.learning_rate=0", "d_optimizer.learning_rate"),
])
def test_bad_values_are_named(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


@pytest.mark.parametrize("text", ["train.epochs", "=3", "train.epochs=[1"])
def test_malformed_overrides(text):
    with pytest.raises(ConfigError, match="override"):
        load_config(None, [text])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "missing.yaml"))
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(str(tmp_path / "list.yaml"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="JSON"):
        load_config(str(tmp_path / "bad.json"))


@pytest.mark.parametrize("name", ["saved.yaml", "saved.json"])
def test_save_load_round_trip(tmp_path, name):
    cfg = load_config(None, ["train.epochs=3", "data.image_size=[64, 48]", "features.weights=null",
                             "g_optimizer.clipnorm=2.0", "train.precision=mixed_float16",
                             "losses.adv=0"])
    path = save_config(cfg, tmp_path / name)
    assert os.path.isfile(path)
    again = load_config(path)
    assert again == cfg
    assert to_dict(again) == to_dict(cfg)
    assert not [p for p in os.listdir(tmp_path) if p != name]  # no temporary left behind


def test_cli_bad_config_exits_2_before_any_work(tmp_path):
    run_dir = tmp_path / "run"
    bad = _write(tmp_path / "bad.yaml", {"run_dir": str(run_dir), "train": {"epochz": 3}})
    result = run_sagim(["train", "--config", bad])
    assert result.returncode == 2, result.stderr
    assert "train.epochz" in result.stderr and "unknown" in result.stderr
    assert "Traceback" not in result.stderr
    assert not run_dir.exists()
    typed = _write(tmp_path / "typed.yaml", {"run_dir": str(run_dir)})
    result = run_sagim(["train", "--config", typed, "--set", "train.precision=fp8"])
    assert result.returncode == 2 and "train.precision" in result.stderr
    assert not run_dir.exists()


def test_cli_print_config(tmp_path):
    path = _write(tmp_path / "c.yaml", {"run_dir": str(tmp_path / "run"), "train": {"epochs": 5}})
    result = run_sagim(["train", "--config", path, "--set", "train.batch_size=2",
                        "--set", "data.image_size=[64, 48]", "--print-config"])
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    expected = to_dict(load_config(path, ["train.batch_size=2", "data.image_size=[64, 48]"]))
    assert printed == expected
    assert printed["train"]["epochs"] == 5 and printed["train"]["batch_size"] == 2
    assert not (tmp_path / "run").exists()
