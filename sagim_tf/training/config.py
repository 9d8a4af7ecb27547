"""Frozen dataclass configs for training, loaded from YAML or JSON with dotted overrides.

A run's config is resolved in four steps, as in tensorflow/models ``official/core``:
the defaults of a named experiment (:mod:`sagim_tf.training.experiments`; without one,
the field defaults below), then a config file (its keys override those defaults), then
``key=value`` overrides, then validation. Unknown keys and values of the wrong type are
rejected with the dotted path of the offending key before any work starts. The resolved
config is written beside the run's outputs, and that file alone reproduces the run::

    cfg = load_config("configs/sam.yaml", overrides=["train.epochs=3", "losses.adv=0"])
    save_config(cfg, "runs/x/config.yaml")

Image sizes are (height, width), Keras' order. In a file they are written as a mapping,
``image_size: {height: 192, width: 256}``; a list is refused, because the list form used to
mean [width, height] and reading it in the new order would silently transpose the images.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from dataclasses import dataclass, field

import yaml

from sagim_tf.data import GUIDANCE_KINDS
from sagim_tf.losses import ALL_LOSS_NAMES, DEFAULT_LOSS_WEIGHTS, PAPER_LOSS_WEIGHTS
from sagim_tf.models import HEADS
from sagim_tf.utils.errors import ConfigError
from sagim_tf.utils.io import atomic_write

# Marks a field held as a (height, width) tuple and written as {height: H, width: W}.
_HEIGHT_WIDTH = {"form": "height_width"}


@dataclass(frozen=True)
class DataConfig:
    """Where the SAM TFRecords are and how batches are made.

    Attributes:
        dir: str. The output folder of ``sagim build-sam``.
        train_split: str. The split to train on.
        val_split: str. The split to validate on after each epoch; ``""`` turns
            validation off.
        val_steps: int. Validation batches per epoch; 0 runs the whole split.
        image_size: tuple. ``(height, width)`` of the training images, Keras' order (the
            paper and SalGAN: 192 high, 256 wide). In a YAML or JSON file and in a
            ``--set`` override it is written as a mapping, ``{height: 192, width: 256}``;
            a list is refused with an error, because until this release the list
            ``[256, 192]`` meant (width, height).
        guidance: str. The guiding map G trains on: ``continuous`` (SAM's map),
            ``binary`` (the mask of O_low) or ``mixed`` (a seeded pick of the two per
            example).
        shuffle_buffer: int. Records in the shuffle buffer; 0 turns shuffling off.
        flip: bool. Random horizontal flips of image and map together.
    """

    dir: str = "data/sam"
    train_split: str = "train"
    val_split: str = "test"
    val_steps: int = 0
    image_size: tuple = field(default=(192, 256), metadata=_HEIGHT_WIDTH)
    guidance: str = "continuous"
    shuffle_buffer: int = 256
    flip: bool = True


@dataclass(frozen=True)
class GeneratorConfig:
    """The U-Net generator G (:class:`sagim_tf.models.generator.SaGIMGenerator`).

    Attributes:
        base_filters: int. Filters of the first encoder stage; each stage doubles them.
        depth: int. Down-sampling stages of the encoder (and up-sampling stages of the
            decoder).
        num_residual_blocks: int. Residual blocks at the bottleneck.
        max_filters: int. The cap on any stage's filters.
        head: str. ``residual`` (the paper's pixel-level G) or ``operators`` (smooth fields
            of photographic operators, applied at the photo's own resolution when editing;
            :mod:`sagim_tf.models.operator_head`). G's work size is the longer side of
            ``data.image_size``.
        field_stride: int. The operator head's field grid: one setting per
            ``field_stride`` x ``field_stride`` pixels; a power of 2.
        field_guide_radius: int. The operator head's edge-aware step: the radius in
            pixels of G's input of the guided filter that makes the upsampled fields follow
            the photo's edges (:mod:`sagim_tf.layers.guided_filter`); 0 turns it off
            (plain bilinear fields).
        field_luma_bins: int. Brightness bins of the operator head's grid (a bilateral
            grid sliced with the photo's luma, :mod:`sagim_tf.layers.luma_slice`); 1 is
            one setting per grid cell.
    """

    base_filters: int = 32
    depth: int = 3
    num_residual_blocks: int = 2
    max_filters: int = 256
    head: str = "residual"
    field_stride: int = 8
    field_guide_radius: int = 0
    field_luma_bins: int = 1


@dataclass(frozen=True)
class DiscriminatorConfig:
    """The PatchGAN discriminator D (:class:`sagim_tf.models.discriminator.PatchDiscriminator`).

    Attributes:
        base_filters: int. Filters of the first convolution; each layer doubles them.
        num_layers: int. Strided convolutions before the patch logits.
    """

    base_filters: int = 64
    num_layers: int = 3


@dataclass(frozen=True)
class FeaturesConfig:
    """The VGG features phi of the content and cycle losses.

    Attributes:
        arch: str. ``vgg19`` or ``vgg16``.
        layers: tuple. Names of the VGG layers whose outputs are compared (N_l of the
            paper; the first five convolutions by default).
        weights: str or None. ``imagenet`` (Keras' download cache), the path of a notop
            ``.h5`` file, or None for random weights drawn with ``seed``.
        seed: int. The seed of random weights.
        feature_scale: float. Multiplies every feature map before the MSE, so that the
            loss is on the scale of pixels in [0, 1].
    """

    arch: str = "vgg19"
    layers: tuple = ("block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1")
    weights: str | None = None
    seed: int = 0
    feature_scale: float = 1.0 / 255.0


@dataclass(frozen=True)
class LossConfig:
    """The weights lambda of the five losses, and the color loss' blur.

    The defaults are the paper's, :data:`sagim_tf.losses.PAPER_LOSS_WEIGHTS` (5:5:1:9:5).
    A weight of 0 removes its term, and the term is then not computed (the paper's
    ablations, Table 2).

    Attributes:
        rec: float. Weight of L_rec, the BCE between the guiding map and E(edited).
        content: float. Weight of L_content, the VGG feature MSE between image and edit.
        color: float. Weight of L_color, the guided L1 between blurred image and edit.
        cycle: float. Weight of L_cycle, the VGG feature MSE of G(edit, E(image)) and image.
        adv: float. Weight of L_adv, G's adversarial loss (D's own loss is unweighted).
        photorealism: float. Weight of L_photo, not in the paper: the mean squared part of
            the edit no local affine colour map explains (:mod:`sagim_tf.losses.photorealism`,
            window radius 2% of the shorter side). Default 0 (off).
        locality: float. Weight of L_local, not in the paper: the change where the guiding
            map equals E's map of the photo, i.e. where no change is asked
            (:mod:`sagim_tf.losses.locality`). Default 0 (off).
        settings: float. Weight of L_settings, not in the paper: a sparsity prior on the
            operator head's settings, the costed mean of ``|tanh(field)|``
            (:mod:`sagim_tf.losses.settings`); needs ``generator.head: operators``.
            Default 0 (off).
        color_kernel_size: int. Side of the color loss' Gaussian filter (odd; paper: 21).
        adv_warmup_steps: int. G steps over which the adv weight ramps up from 0 (paper: 0).
    """

    rec: float = PAPER_LOSS_WEIGHTS["rec"]
    content: float = PAPER_LOSS_WEIGHTS["content"]
    color: float = PAPER_LOSS_WEIGHTS["color"]
    cycle: float = PAPER_LOSS_WEIGHTS["cycle"]
    adv: float = PAPER_LOSS_WEIGHTS["adv"]
    photorealism: float = DEFAULT_LOSS_WEIGHTS["photorealism"]
    locality: float = DEFAULT_LOSS_WEIGHTS["locality"]
    settings: float = DEFAULT_LOSS_WEIGHTS["settings"]
    color_kernel_size: int = 21
    adv_warmup_steps: int = 0

    def weights(self) -> dict:
        """``{name: weight}`` for every name in :data:`sagim_tf.losses.ALL_LOSS_NAMES`."""
        return {name: getattr(self, name) for name in ALL_LOSS_NAMES}


@dataclass(frozen=True)
class OptimizerConfig:
    """One optimizer (G and D each have their own).

    Attributes:
        name: str. ``adam``, ``adamw`` or ``sgd`` (the paper: Adam).
        learning_rate: float. The learning rate (the paper: 1e-3).
        beta_1: float. Adam's first-moment decay; SGD's momentum.
        beta_2: float. Adam's second-moment decay.
        weight_decay: float. Decoupled weight decay, ``adamw`` only.
        clipnorm: float or None. Clip each gradient to this norm; None does not clip.
    """

    name: str = "adam"
    learning_rate: float = 1e-3
    beta_1: float = 0.9
    beta_2: float = 0.999
    weight_decay: float = 0.0
    clipnorm: float | None = None


@dataclass(frozen=True)
class TrainConfig:
    """The schedule, numerics and bookkeeping of ``model.fit``.

    Attributes:
        epochs: int. Epochs to train (the paper: 100); may grow when a run is resumed.
        batch_size: int. The global batch, split across replicas.
        steps_per_epoch: int. G steps per epoch; 0 covers the training split once.
        precision: str. ``float32``, ``mixed_float16`` or ``bfloat16``.
        jit_compile: bool. Compile the train step with XLA.
        distribution: str. ``none``, ``mirrored`` (the GPUs of one machine) or
            ``multi_worker`` (needs ``TF_CONFIG``).
        seed: int. Seeds Keras, NumPy, Python and the input pipeline.
        image_every_steps: int. G steps between image grids written to TensorBoard and
            PNG; 0 turns them off.
        keep_checkpoints: int. Per-epoch checkpoints kept in ``<run_dir>/checkpoints``.
        verbose: int. Keras' progress output: 0 silent, 1 a bar, 2 a line per epoch.
        time_budget_minutes: float. Stop training at the end of the first G step after
            this many minutes of it (the run saves its outputs as usual and resumes when
            run again); 0 sets no limit.
    """

    epochs: int = 100
    batch_size: int = 4
    steps_per_epoch: int = 0
    precision: str = "float32"
    jit_compile: bool = False
    distribution: str = "none"
    seed: int = 0
    image_every_steps: int = 200
    keep_checkpoints: int = 2
    verbose: int = 1
    time_budget_minutes: float = 0.0


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one training run needs.

    Attributes:
        run_dir: str. The run's folder: config, checkpoints, logs, samples and models.
        estimator: str. The frozen saliency estimator E, as a spec string
            (``itti-koch``, ``salgan:PATH``, ``keras:PATH``; see
            :mod:`sagim_tf.estimators`).
        data: DataConfig. The SAM data and its batches.
        generator: GeneratorConfig. G's architecture.
        discriminator: DiscriminatorConfig. D's architecture.
        features: FeaturesConfig. The VGG features of the content and cycle losses.
        losses: LossConfig. The loss weights.
        g_optimizer: OptimizerConfig. G's optimizer.
        d_optimizer: OptimizerConfig. D's optimizer.
        train: TrainConfig. Schedule, precision, distribution and bookkeeping.
    """

    run_dir: str = "runs/sagim"
    estimator: str = "itti-koch"
    data: DataConfig = field(default_factory=DataConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    g_optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    d_optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


_CHOICES = {
    "data.guidance": GUIDANCE_KINDS,
    "generator.head": HEADS,
    "features.arch": ("vgg19", "vgg16"),
    "g_optimizer.name": ("adam", "adamw", "sgd"),
    "d_optimizer.name": ("adam", "adamw", "sgd"),
    "train.precision": ("float32", "mixed_float16", "bfloat16"),
    "train.distribution": ("none", "mirrored", "multi_worker"),
}


# ---------------------------------------------------------------------------- coercion
def _coerce_height_width(value, path):
    if isinstance(value, (list, tuple)):
        raise ConfigError(
            f"{path}: write it as {{height: H, width: W}}, got the list {list(value)}. "
            "image_size is now (height, width), Keras' order; the list form used to mean "
            "[width, height] and is no longer read, so that an old config cannot silently "
            "transpose the images"
        )
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected {{height: H, width: W}}, got {value!r}")
    keys = set(value)
    if keys != {"height", "width"}:
        raise ConfigError(
            f"{path}: expected exactly the keys height and width, got {', '.join(sorted(map(str, keys)))}"
        )
    out = []
    for key in ("height", "width"):
        v = value[key]
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{path}.{key}: expected an integer, got {v!r}")
        out.append(v)
    return tuple(out)


def _coerce(value, annotation, path):
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):  # X | None
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
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"unknown config key(s) {', '.join(where + str(k) for k in unknown)}; "
            f"{prefix or 'top level'} takes: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in data.items():
        path = f"{prefix}.{name}" if prefix else name
        if fields[name].metadata == _HEIGHT_WIDTH:
            kwargs[name] = _coerce_height_width(value, path)
        else:
            kwargs[name] = _coerce(value, hints[name], path)
    return cls(**kwargs)


def to_dict(config) -> dict:
    """A plain dict that YAML and JSON can hold, in the form a config file takes.

    Tuples become lists, and a (height, width) size becomes ``{height: H, width: W}``.
    """

    def plain(v):
        if dataclasses.is_dataclass(v):
            out = {}
            for f in dataclasses.fields(v):
                value = getattr(v, f.name)
                if f.metadata == _HEIGHT_WIDTH:
                    out[f.name] = {"height": int(value[0]), "width": int(value[1])}
                else:
                    out[f.name] = plain(value)
            return out
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(config)


def _merge(base: dict, update: dict) -> dict:
    """``base`` with ``update``'s keys laid over it, mappings merged key by key."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _set_dotted(tree: dict, dotted: str, value):
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        if key not in node or node[key] is None:
            node[key] = {}
        node = node[key]
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
    """Check choices and ranges that types alone cannot; returns ``config``."""
    flat = to_dict(config)
    for dotted, choices in _CHOICES.items():
        section, key = dotted.split(".")
        value = flat[section][key]
        if value not in choices:
            raise ConfigError(f"{dotted}: {value!r} is not one of {', '.join(choices)}")
    size = config.data.image_size
    if len(size) != 2 or not all(isinstance(v, int) and v >= 8 for v in size):
        raise ConfigError(
            f"data.image_size: expected (height, width), integers >= 8, got {tuple(size)}"
        )
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
    stride = config.generator.field_stride
    if stride < 1 or stride & (stride - 1):
        raise ConfigError(f"generator.field_stride: must be a power of 2, got {stride}")
    if config.generator.field_luma_bins < 1:
        raise ConfigError(
            f"generator.field_luma_bins: must be >= 1, got {config.generator.field_luma_bins}"
        )
    if config.generator.field_guide_radius < 0:
        raise ConfigError(
            f"generator.field_guide_radius: must be >= 0, got {config.generator.field_guide_radius}"
        )
    for key in (*ALL_LOSS_NAMES, "adv_warmup_steps"):
        value = getattr(config.losses, key)
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"losses.{key}: must be finite and >= 0, got {value}")
    if config.losses.color_kernel_size % 2 == 0:
        raise ConfigError(
            f"losses.color_kernel_size: must be odd, got {config.losses.color_kernel_size}"
        )
    for opt in ("g_optimizer", "d_optimizer"):
        o = getattr(config, opt)
        if not math.isfinite(o.learning_rate) or o.learning_rate <= 0:
            raise ConfigError(f"{opt}.learning_rate: must be finite and > 0, got {o.learning_rate}")
        for key in ("beta_1", "beta_2"):
            value = getattr(o, key)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{opt}.{key}: must lie in [0, 1), got {value}")
        if not math.isfinite(o.weight_decay) or o.weight_decay < 0:
            raise ConfigError(f"{opt}.weight_decay: must be finite and >= 0, got {o.weight_decay}")
        if o.clipnorm is not None and not (math.isfinite(o.clipnorm) and o.clipnorm > 0):
            raise ConfigError(f"{opt}.clipnorm: must be None or finite and > 0, got {o.clipnorm}")
    # The colour loss' blur mirror-pads by half its kernel (reflection needs more pixels
    # than that), and G's U-Net halves the size ``depth`` times.
    need = max(config.losses.color_kernel_size // 2 + 1, 2**config.generator.depth)
    if min(size) < need:
        raise ConfigError(
            f"data.image_size: {tuple(size)} is too small; each side must be at least {need} "
            f"(losses.color_kernel_size {config.losses.color_kernel_size} mirror-pads by "
            f"{config.losses.color_kernel_size // 2}, and G halves the size "
            f"{config.generator.depth} times)"
        )
    if config.train.steps_per_epoch < 0 or config.data.val_steps < 0:
        raise ConfigError("train.steps_per_epoch and data.val_steps must be >= 0")
    if not math.isfinite(config.train.time_budget_minutes) or config.train.time_budget_minutes < 0:
        raise ConfigError(
            "train.time_budget_minutes: must be finite and >= 0 (0: no budget), got "
            f"{config.train.time_budget_minutes}"
        )
    return config


def read_config_file(path) -> dict:
    """The mapping a YAML or JSON config file holds (``{}`` for an empty file)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    kind = "JSON" if path.endswith(".json") else "YAML"
    try:
        data = json.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path!r} is not valid {kind}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping at the top level")
    return data


def load_config(path=None, overrides=(), base: ExperimentConfig | None = None) -> ExperimentConfig:
    """Resolve a config: ``base``, then the file at ``path``, then ``overrides``, then validate.

    Args:
        path: str or None. A YAML or JSON file whose keys override ``base``'s. Defaults to
            None (no file).
        overrides: sequence of str. ``section.key=value`` overrides, applied in order (the
            last one of a key wins); values are read as YAML. Defaults to none.
        base: ExperimentConfig or None. The defaults to start from, usually a named
            experiment's (:func:`sagim_tf.training.experiments.get_experiment`). Defaults
            to None, the field defaults.

    Returns:
        The validated :class:`ExperimentConfig`.
    """
    data = to_dict(base if base is not None else ExperimentConfig())
    if path:
        data = _merge(data, read_config_file(path))
    for text in overrides or ():
        key, value = parse_override(text)
        _set_dotted(data, key, value)
    return validate(_from_dict(ExperimentConfig, data))


def replace_config(config: ExperimentConfig, updates: dict) -> ExperimentConfig:
    """``config`` with ``updates`` (a mapping shaped like a config file) laid over it.

    Example:

    ```python
    cfg = replace_config(cfg, {"run_dir": "runs/x", "data": {"image_size": {"height": 48, "width": 64}}})
    ```
    """
    return validate(_from_dict(ExperimentConfig, _merge(to_dict(config), updates)))


def config_from_dict(data: dict) -> ExperimentConfig:
    """The validated config a mapping (shaped like a config file) describes over the defaults."""
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
