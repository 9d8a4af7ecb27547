"""Frozen dataclass configs for training, loaded from YAML or JSON with dotted overrides.

Every field has a default, so an empty file (or none) is a complete config. Unknown keys
and values of the wrong type are rejected with the dotted path of the offending key
before any work starts. The resolved config is written beside the run's outputs, and
that file alone reproduces the run::

    cfg = load_config("configs/sam.yaml", overrides=["train.epochs=3", "losses.adv=0"])
    save_config(cfg, "runs/x/config.yaml")
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from dataclasses import dataclass, field

import yaml

from sagim_tf.utils.errors import ConfigError
from sagim_tf.utils.io import atomic_write


@dataclass(frozen=True)
class DataConfig:
    """Where the SAM TFRecords are and how batches are made."""

    dir: str = "data/sam"  # output folder of `sagim build-sam`
    train_split: str = "train"
    val_split: str = "test"  # "" turns validation off
    val_steps: int = 0  # 0: the whole split
    image_size: tuple = (256, 192)  # width, height
    guidance: str = "continuous"  # continuous | binary | mixed (half of each, per example)
    shuffle_buffer: int = 256
    flip: bool = True


@dataclass(frozen=True)
class GeneratorConfig:
    base_filters: int = 32
    depth: int = 3
    num_residual_blocks: int = 2
    max_filters: int = 256


@dataclass(frozen=True)
class DiscriminatorConfig:
    base_filters: int = 64
    num_layers: int = 3


@dataclass(frozen=True)
class FeaturesConfig:
    """VGG content features; weights: "imagenet", a path to a notop .h5, or null (random)."""

    arch: str = "vgg19"
    layers: tuple = ("block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1")
    weights: typing.Optional[str] = None
    seed: int = 0
    feature_scale: float = 1.0 / 255.0


@dataclass(frozen=True)
class LossConfig:
    """Loss weights (paper: 5:5:1:9:5); 0 removes a term."""

    rec: float = 5.0
    content: float = 5.0
    color: float = 1.0
    cycle: float = 9.0
    adv: float = 5.0
    color_kernel_size: int = 21
    adv_warmup_steps: int = 0  # G steps over which the adv weight ramps up from 0 (paper: 0)


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = "adam"  # adam | adamw | sgd
    learning_rate: float = 1e-3
    beta_1: float = 0.9
    beta_2: float = 0.999
    weight_decay: float = 0.0  # adamw only
    clipnorm: typing.Optional[float] = None


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100
    batch_size: int = 4  # global batch, split across replicas
    steps_per_epoch: int = 0  # 0: the whole split
    precision: str = "float32"  # float32 | mixed_float16 | bfloat16
    jit_compile: bool = False
    distribution: str = "none"  # none | mirrored | multi_worker
    seed: int = 0
    image_every_steps: int = 200  # image grid to TensorBoard and PNG; 0 turns it off
    keep_checkpoints: int = 2
    verbose: int = 1  # Keras progress: 0 silent, 1 bar, 2 a line per epoch


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one training run needs."""

    run_dir: str = "runs/sagim"
    estimator: str = "itti-koch"  # a spec string, see sagim_tf.estimators
    data: DataConfig = field(default_factory=DataConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    g_optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    d_optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# The guiding maps training can read (``sagim_tf.data.train_dataset`` says what each means).
from sagim_tf.data import GUIDANCE_KINDS  # noqa: E402  (a constant; sagim_tf.data is lazy and light)

_CHOICES = {
    "data.guidance": GUIDANCE_KINDS,
    "features.arch": ("vgg19", "vgg16"),
    "g_optimizer.name": ("adam", "adamw", "sgd"),
    "d_optimizer.name": ("adam", "adamw", "sgd"),
    "train.precision": ("float32", "mixed_float16", "bfloat16"),
    "train.distribution": ("none", "mirrored", "multi_worker"),
}


# ---------------------------------------------------------------------------- coercion
def _coerce(value, annotation, path):
    origin = typing.get_origin(annotation)
    if origin is typing.Union:  # Optional[X]
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], path)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__} {value!r}")
        return _from_dict(annotation, value, path)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, str):
            # PyYAML follows YAML 1.1, which reads "1e-4" (no dot) as a string.
            try:
                value = float(value.strip())
            except ValueError:
                raise ConfigError(f"{path}: expected a number, got {value!r}") from None
            if not math.isfinite(value):
                raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    if annotation is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(value)
        raise ConfigError(f"{path}: expected a list, got {value!r}")
    raise ConfigError(f"{path}: unsupported field type {annotation}")  # pragma: no cover


def _from_dict(cls, data: dict, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"unknown config key(s) {', '.join(where + k for k in unknown)}; "
            f"{prefix or 'top level'} takes: {', '.join(sorted(names))}"
        )
    kwargs = {}
    for name, value in data.items():
        path = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(value, hints[name], path)
    return cls(**kwargs)


def to_dict(config) -> dict:
    """A plain dict (tuples as lists) that YAML and JSON can hold."""

    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))


def _set_dotted(tree: dict, dotted: str, value):
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {key!r} is not a section")
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, object]:
    """``key.sub=value``; the value is read as YAML (numbers, booleans, lists, null)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has no key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: cannot read value ({exc})") from None
    return key, value


def validate(config: ExperimentConfig) -> ExperimentConfig:
    """Check choices and ranges that types alone cannot."""
    flat = to_dict(config)
    for dotted, choices in _CHOICES.items():
        section, key = dotted.split(".")
        value = flat[section][key]
        if value not in choices:
            raise ConfigError(f"{dotted}: {value!r} is not one of {', '.join(choices)}")
    size = config.data.image_size
    if len(size) != 2 or not all(isinstance(v, int) and v >= 8 for v in size):
        raise ConfigError(f"data.image_size: expected [width, height], integers >= 8, got {list(size)}")
    positives = {
        "train.epochs": config.train.epochs,
        "train.batch_size": config.train.batch_size,
        "generator.base_filters": config.generator.base_filters,
        "discriminator.base_filters": config.discriminator.base_filters,
        "losses.color_kernel_size": config.losses.color_kernel_size,
    }
    for key, value in positives.items():
        if value < 1:
            raise ConfigError(f"{key}: must be >= 1, got {value}")
    for key in ("rec", "content", "color", "cycle", "adv", "adv_warmup_steps"):
        if getattr(config.losses, key) < 0:
            raise ConfigError(f"losses.{key}: must be >= 0, got {getattr(config.losses, key)}")
    if config.losses.color_kernel_size % 2 == 0:
        raise ConfigError(f"losses.color_kernel_size: must be odd, got {config.losses.color_kernel_size}")
    for opt in ("g_optimizer", "d_optimizer"):
        if getattr(config, opt).learning_rate <= 0:
            raise ConfigError(f"{opt}.learning_rate: must be > 0")
    if config.train.steps_per_epoch < 0 or config.data.val_steps < 0:
        raise ConfigError("train.steps_per_epoch and data.val_steps must be >= 0")
    return config


def read_config_file(path) -> dict:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path!r} is not valid {'JSON' if path.endswith('.json') else 'YAML'}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping at the top level")
    return data


def load_config(path=None, overrides=()) -> ExperimentConfig:
    """Read a YAML/JSON file (or start from the defaults), apply ``key=value`` overrides."""
    data = read_config_file(path) if path else {}
    for text in overrides or ():
        key, value = parse_override(text)
        _set_dotted(data, key, value)
    return validate(_from_dict(ExperimentConfig, data))


def config_from_dict(data: dict) -> ExperimentConfig:
    return validate(_from_dict(ExperimentConfig, data))


def save_config(config: ExperimentConfig, path) -> str:
    """Write the resolved config (YAML, or JSON for a .json path) atomically."""
    data = to_dict(config)
    text = (
        json.dumps(data, indent=2) + "\n"
        if os.fspath(path).endswith(".json")
        else yaml.safe_dump(data, sort_keys=False)
    )

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, write)
