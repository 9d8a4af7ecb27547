"""ExperimentConfig and the named experiments: defaults, files, overrides, errors, CLI."""

import dataclasses
import json
import os
import re

import pytest
import yaml

from sagim_tf.losses import ALL_LOSS_NAMES, LOSS_NAMES, PAPER_LOSS_WEIGHTS
from sagim_tf.training import config as config_module
from sagim_tf.training.config import (
    ExperimentConfig,
    LossConfig,
    load_config,
    replace_config,
    save_config,
    to_dict,
)
from sagim_tf.training.experiments import (
    ABLATION_VARIANTS,
    ablation_variant,
    get_experiment,
    list_experiments,
    load_experiment,
    register_experiment,
)
from sagim_tf.utils.errors import ConfigError
from tests.train_helpers import ROOT, run_sagim

#: The terms beyond the paper, all off unless a config turns them on.
EXTRAS_OFF = {"photorealism": 0.0, "locality": 0.0, "settings": 0.0}


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
    assert (
        cfg.losses.rec,
        cfg.losses.content,
        cfg.losses.color,
        cfg.losses.cycle,
        cfg.losses.adv,
    ) == (5.0, 5.0, 1.0, 9.0, 5.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.epochs = 3
    assert load_config(None) == load_config(None, [])


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_load_yaml_and_json(tmp_path, fmt):
    data = {
        "run_dir": "runs/x",
        "data": {"image_size": {"height": 48, "width": 64}, "flip": False},
        "losses": {"adv": 0},
        "g_optimizer": {"name": "adamw", "learning_rate": 2e-4},
        "train": {"epochs": 7, "precision": "bfloat16", "distribution": "mirrored"},
    }
    path = _write(tmp_path / f"c.{fmt}", data, fmt)
    cfg = load_config(path)
    assert cfg.run_dir == "runs/x"
    assert cfg.data.image_size == (48, 64) and cfg.data.flip is False  # (height, width)
    assert cfg.losses.adv == 0.0 and isinstance(cfg.losses.adv, float)
    assert cfg.g_optimizer.name == "adamw" and cfg.g_optimizer.learning_rate == 2e-4
    assert cfg.d_optimizer == ExperimentConfig().d_optimizer
    assert (cfg.train.epochs, cfg.train.precision, cfg.train.distribution) == (
        7,
        "bfloat16",
        "mirrored",
    )
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
    path = _write(
        tmp_path / "c.yaml", {"train": {"epochs": 5}, "features": {"weights": "imagenet"}}
    )
    cfg = load_config(
        path,
        [
            "train.epochs=3",
            "data.image_size={height: 24, width: 32}",
            "features.weights=null",
            "features.layers=[block1_conv1, block2_conv1]",
            "train.jit_compile=true",
            "g_optimizer.clipnorm=1.5",
            "run_dir=runs/y",
            "data.val_split=",
        ],
    )
    assert cfg.train.epochs == 3
    assert cfg.data.image_size == (24, 32)
    assert cfg.features.weights is None
    assert cfg.features.layers == ("block1_conv1", "block2_conv1")
    assert cfg.train.jit_compile is True
    assert cfg.g_optimizer.clipnorm == 1.5
    assert cfg.run_dir == "runs/y"
    assert cfg.data.val_split == ""
    # The last override of a key wins.
    assert load_config(None, ["train.epochs=3", "train.epochs=4"]).train.epochs == 4


@pytest.mark.parametrize(
    "data, overrides, key",
    [
        ({"trian": {"epochs": 1}}, [], "trian"),
        ({"train": {"epochz": 1}}, [], "train.epochz"),
        ({}, ["train.epochz=1"], "train.epochz"),
        ({}, ["data.dirr=x"], "data.dirr"),
        ({}, ["nope=1"], "nope"),
    ],
)
def test_unknown_keys_are_named(tmp_path, data, overrides, key):
    path = _write(tmp_path / "c.yaml", data)
    with pytest.raises(ConfigError, match="unknown") as info:
        load_config(path, overrides)
    assert key in str(info.value)


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.epochs=three", "train.epochs"),
        ("train.epochs=1.5", "train.epochs"),
        ("train.jit_compile=1", "train.jit_compile"),
        ("train.batch_size=true", "train.batch_size"),
        ("g_optimizer.learning_rate=fast", "g_optimizer.learning_rate"),
        ("data.image_size=64", "data.image_size"),
        ("estimator=3", "estimator"),
        ("train=5", "train"),
        ("features.weights=[1]", "features.weights"),
    ],
)
def test_wrong_types_are_named(override, key):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert str(info.value).startswith(key + ":") or f"{key}:" in str(info.value)


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.precision=float16", "train.precision"),
        ("train.precision=mixed_bfloat16", "train.precision"),
        ("train.distribution=tpu", "train.distribution"),
        ("g_optimizer.name=rmsprop", "g_optimizer.name"),
        ("data.guidance=soft", "data.guidance"),
        ("train.epochs=0", "train.epochs"),
        ("losses.adv=-1", "losses.adv"),
        ("losses.color_kernel_size=4", "losses.color_kernel_size"),
        ("data.image_size={height: 4, width: 4}", "data.image_size"),
        ("d_optimizer.learning_rate=0", "d_optimizer.learning_rate"),
    ],
)
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
    cfg = load_config(
        None,
        [
            "train.epochs=3",
            "data.image_size={height: 48, width: 64}",
            "features.weights=null",
            "g_optimizer.clipnorm=2.0",
            "train.precision=mixed_float16",
            "losses.adv=0",
        ],
    )
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
    result = run_sagim(
        [
            "train",
            "--config",
            path,
            "--set",
            "train.batch_size=2",
            "--set",
            "data.image_size={height: 48, width: 64}",
            "--print-config",
        ]
    )
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    expected = to_dict(
        load_config(path, ["train.batch_size=2", "data.image_size={height: 48, width: 64}"])
    )
    assert printed == expected
    assert printed["train"]["epochs"] == 5 and printed["train"]["batch_size"] == 2
    assert not (tmp_path / "run").exists()
    assert printed["data"]["image_size"] == {"height": 48, "width": 64}


# ---------------------------------------------------------------------------- image_size
@pytest.mark.parametrize("where", ["file", "override"])
def test_old_width_height_list_is_refused_with_a_message(tmp_path, where):
    if where == "file":
        path = _write(tmp_path / "old.yaml", {"data": {"image_size": [256, 192]}})
        call = lambda: load_config(path)  # noqa: E731
    else:
        call = lambda: load_config(None, ["data.image_size=[256, 192]"])  # noqa: E731
    with pytest.raises(ConfigError, match=r"data\.image_size") as info:
        call()
    message = str(info.value)
    assert "{height: H, width: W}" in message and "(height, width)" in message
    assert "[width, height]" in message  # says what the old form meant


def test_image_size_mapping_forms():
    assert load_config(None, ["data.image_size.height=40"]).data.image_size == (40, 256)
    with pytest.raises(ConfigError, match="height and width"):
        load_config(None, ["data.image_size={h: 24, w: 32}"])
    with pytest.raises(ConfigError, match=r"data\.image_size\.width: expected an integer"):
        load_config(None, ["data.image_size={height: 24, width: 3.5}"])
    saved = to_dict(load_config(None, ["data.image_size={height: 24, width: 32}"]))
    assert saved["data"]["image_size"] == {"height": 24, "width": 32}


# ---------------------------------------------------------------------------- loss weights
def test_loss_weights_are_the_one_definition():
    # the paper's five, then the extra photorealism, locality and settings terms, off by default
    assert LossConfig().weights() == {**PAPER_LOSS_WEIGHTS, **EXTRAS_OFF}
    assert tuple(LossConfig().weights()) == ALL_LOSS_NAMES
    assert ALL_LOSS_NAMES[: len(LOSS_NAMES)] == LOSS_NAMES
    assert tuple(LossConfig(adv=0.0).weights().values()) == (5.0, 5.0, 1.0, 9.0, 0.0, 0.0, 0.0, 0.0)


# ---------------------------------------------------------------------------- docs
def test_every_config_field_is_documented():
    """Each dataclass lists each of its fields in its docstring's Attributes block."""
    classes = [
        c
        for c in vars(config_module).values()
        if dataclasses.is_dataclass(c) and c.__module__ == config_module.__name__
    ]
    assert len(classes) == 8
    for cls in classes:
        doc = cls.__doc__ or ""
        assert "Attributes:" in doc, cls.__name__
        block = doc.split("Attributes:", 1)[1]
        documented = set(re.findall(r"^\s{8}(\w+): ", block, flags=re.M))
        assert documented == {f.name for f in dataclasses.fields(cls)}, cls.__name__


# ---------------------------------------------------------------------------- experiments
def test_registered_experiments():
    names = list_experiments()
    for name in (
        "paper",
        "demo-cpu",
        "ablation/full",
        "ablation/no-cycle",
        "ablation/no-adv",
        "ablation/no-color",
    ):
        assert name in names
    paper = get_experiment("paper")
    assert paper.estimator.startswith("salgan:")
    assert paper.losses.weights() == {**PAPER_LOSS_WEIGHTS, **EXTRAS_OFF}
    assert (paper.g_optimizer.name, paper.g_optimizer.learning_rate) == ("adam", 1e-3)
    assert (paper.d_optimizer.name, paper.d_optimizer.learning_rate) == ("adam", 1e-3)
    assert paper.train.epochs == 100 and paper.data.image_size == (192, 256)
    demo = get_experiment("demo-cpu")
    assert (demo.losses.adv, demo.losses.content, demo.data.guidance) == (0.0, 20.0, "mixed")
    assert demo.generator.base_filters == 16 and demo.train.time_budget_minutes == 5.0
    assert (demo.generator.head, demo.losses.locality) == ("operators", 40.0)
    assert demo.data.image_size == (72, 96)
    for variant, removed in ABLATION_VARIANTS.items():
        cfg = get_experiment(f"ablation/{variant}")
        expected = dict(PAPER_LOSS_WEIGHTS, **EXTRAS_OFF, **({removed: 0.0} if removed else {}))
        assert cfg.losses.weights() == expected, variant
        assert cfg.run_dir == os.path.join("runs/ablation", variant)
    # A fresh copy each time: no caller can change another's.
    assert get_experiment("paper") == paper and get_experiment("paper") is not paper


def test_unknown_experiment_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown experiment 'papr'") as info:
        get_experiment("papr")
    for name in list_experiments():
        assert name in str(info.value)


def test_register_experiment_refuses_a_taken_name():
    with pytest.raises(ConfigError, match="already registered"):
        register_experiment("paper", ExperimentConfig)


def test_resolution_order_experiment_file_overrides(tmp_path):
    """The experiment's defaults, then the file's keys, then --set; the last word wins."""
    path = _write(
        tmp_path / "c.yaml", {"train": {"epochs": 7, "batch_size": 2}, "losses": {"content": 3}}
    )
    cfg = load_experiment("demo-cpu", path, ["train.epochs=9"])
    assert cfg.train.epochs == 9  # --set over the file
    assert cfg.train.batch_size == 2 and cfg.losses.content == 3.0  # the file over the experiment
    assert cfg.losses.adv == 0.0 and cfg.data.guidance == "mixed"  # the experiment's own
    assert cfg.generator == get_experiment("demo-cpu").generator
    assert load_experiment(None, path) == load_config(path)  # no experiment: field defaults
    with pytest.raises(ConfigError, match="losses.adv"):
        load_experiment("paper", None, ["losses.adv=-1"])  # validated last


def test_configs_sam_yaml_overrides_the_paper():
    cfg = load_experiment("paper", os.path.join(ROOT, "configs", "sam.yaml"))
    paper = get_experiment("paper")
    assert cfg.train.precision == "mixed_float16" and cfg.train.distribution == "mirrored"
    assert cfg.losses == paper.losses and cfg.g_optimizer == paper.g_optimizer
    assert cfg.estimator == paper.estimator and cfg.data.image_size == (192, 256)


def test_ablation_variant_and_replace_config():
    base = replace_config(ExperimentConfig(), {"run_dir": "runs/x", "losses": {"content": 20}})
    variant = ablation_variant(base, "no-color")
    assert variant.losses.color == 0.0 and variant.losses.content == 20.0
    assert variant.run_dir == os.path.join("runs/x", "no-color")
    assert ablation_variant(base, "full").losses == base.losses
    with pytest.raises(ConfigError, match="unknown ablation variant 'no-rec'"):
        ablation_variant(base, "no-rec")


def test_cli_experiment(tmp_path):
    result = run_sagim(
        ["train", "--experiment", "demo-cpu", "--set", "train.epochs=2", "--print-config"]
    )
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert printed == to_dict(load_experiment("demo-cpu", None, ["train.epochs=2"]))
    result = run_sagim(["train", "--experiment", "nope", "--print-config"])
    assert result.returncode == 2 and "unknown experiment 'nope'" in result.stderr
    assert "demo-cpu" in result.stderr and "Traceback" not in result.stderr
    result = run_sagim(["train", "--list-experiments"])
    assert result.returncode == 0 and result.stdout.split() == list_experiments()


@pytest.mark.parametrize(
    "override, needle",
    [
        ("g_optimizer.beta_1=5", "g_optimizer.beta_1: must lie in [0, 1)"),
        ("d_optimizer.beta_2=1.0", "d_optimizer.beta_2: must lie in [0, 1)"),
        ("g_optimizer.learning_rate=.inf", "g_optimizer.learning_rate: must be finite"),
        ("g_optimizer.learning_rate=0", "g_optimizer.learning_rate: must be finite and > 0"),
        ("g_optimizer.weight_decay=-1", "g_optimizer.weight_decay"),
        ("d_optimizer.clipnorm=0", "d_optimizer.clipnorm"),
        ("data.image_size={height: 8, width: 8}", "each side must be at least 11"),
    ],
)
def test_value_ranges_are_checked_before_any_work(override, needle):
    with pytest.raises(ConfigError) as info:
        load_experiment("paper", None, [override])
    assert needle in str(info.value)
