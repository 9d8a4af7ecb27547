"""Named experiments: a registry of complete training configs, looked up by name.

In the shape of tensorflow/models ``official/core/exp_factory.py``: each experiment is a
function that returns a fresh :class:`~sagim_tf.training.config.ExperimentConfig`,
registered under a name. A run resolves its config from an experiment's defaults, then a
config file (``configs/*.yaml`` hold overrides), then ``--set`` overrides, then validation
(:func:`load_experiment`)::

    sagim train --experiment paper --config configs/sam.yaml --set train.epochs=3

Registered here:

================== =====================================================================
name               what it is
================== =====================================================================
paper              the paper's setup (BMVC 2019, §3.4, §4.1): SalGAN as E, losses
                   5:5:1:9:5, Adam at 1e-3 for G and D, 100 epochs, 256x192 images
demo-cpu           what ``sagim demo`` trains: a small G with the operator head, no
                   adversarial term, content weight 20, locality 40, mixed guidance,
                   VGG's first three convolutions, 96x72, a 5-minute time budget (see
                   :mod:`sagim_tf.workflows.demo`)
ablation/full      ``paper``, trained in ``runs/ablation/full`` (Table 2's "Ours")
ablation/no-cycle  ``paper`` without L_cycle (Table 2's "w/o L_cycle")
ablation/no-adv    ``paper`` without L_adv
ablation/no-color  ``paper`` without L_color
================== =====================================================================

The ablation variants of any config are made by :func:`ablation_variant`, the one
definition that the ``ablation/*`` experiments and ``scripts/ablation.py`` share.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from sagim_tf.training.config import (
    DataConfig,
    DiscriminatorConfig,
    ExperimentConfig,
    FeaturesConfig,
    GeneratorConfig,
    LossConfig,
    TrainConfig,
    load_config,
    replace_config,
    validate,
)
from sagim_tf.utils.errors import ConfigError

_EXPERIMENTS: dict[str, Callable[[], ExperimentConfig]] = {}

#: The loss ablations of the paper's Table 2: variant -> the loss weight it sets to 0
#: (None: the full model).
ABLATION_VARIANTS = {"full": None, "no-cycle": "cycle", "no-adv": "adv", "no-color": "color"}

#: The paper's column names for the variants (Table 2).
ABLATION_PAPER_COLUMNS = {
    "full": "Ours",
    "no-cycle": "w/o Lcycle",
    "no-adv": "w/o Ladv",
    "no-color": "w/o Lcolor",
}


def register_experiment(name: str, factory: Callable[[], ExperimentConfig] | None = None):
    """Register ``factory`` (a function returning an ExperimentConfig) under ``name``.

    Usable as a decorator, ``@register_experiment("mine")``, or as a call,
    ``register_experiment("mine", make_config)``. A name is registered once.

    Args:
        name: str. The experiment's name, e.g. ``"paper"`` or ``"ablation/no-adv"``.
        factory: callable or None. Returns a fresh config each call. Defaults to None
            (then the decorator form is returned).

    Returns:
        ``factory``, or the decorator that registers it.
    """

    def register(fn):
        if not isinstance(name, str) or not name:
            raise ConfigError(f"an experiment name must be a non-empty string, got {name!r}")
        if name in _EXPERIMENTS:
            raise ConfigError(f"experiment {name!r} is already registered")
        _EXPERIMENTS[name] = fn
        return fn

    return register(factory) if factory is not None else register


def list_experiments() -> list[str]:
    """The registered experiment names, sorted."""
    return sorted(_EXPERIMENTS)


def get_experiment(name: str) -> ExperimentConfig:
    """A fresh, validated copy of the experiment registered as ``name``.

    Raises:
        ConfigError: ``name`` is not registered; the message lists the known names.
    """
    if name not in _EXPERIMENTS:
        raise ConfigError(
            f"unknown experiment {name!r}; known experiments: {', '.join(list_experiments())}"
        )
    return validate(_EXPERIMENTS[name]())


def load_experiment(name: str | None = None, path=None, overrides=()) -> ExperimentConfig:
    """Resolve a run's config: the experiment's defaults, then the file, then the overrides.

    Args:
        name: str or None. A registered experiment. Defaults to None, the field defaults
            of :class:`~sagim_tf.training.config.ExperimentConfig`.
        path: str or None. A YAML/JSON file of overrides. Defaults to None.
        overrides: sequence of str. ``section.key=value`` overrides. Defaults to none.

    Returns:
        The validated config.
    """
    base = get_experiment(name) if name else None
    return load_config(path, overrides, base=base)


def ablation_variant(config: ExperimentConfig, variant: str) -> ExperimentConfig:
    """``config`` with the variant's loss weight set to 0, run in ``<run_dir>/<variant>``.

    Args:
        config: ExperimentConfig. The full model's config.
        variant: str. One of :data:`ABLATION_VARIANTS`.
    """
    if variant not in ABLATION_VARIANTS:
        raise ConfigError(
            f"unknown ablation variant {variant!r}; known: {', '.join(ABLATION_VARIANTS)}"
        )
    removed = ABLATION_VARIANTS[variant]
    updates = {"run_dir": os.path.join(config.run_dir, variant)}
    if removed is not None:
        updates["losses"] = {removed: 0.0}
    return replace_config(config, updates)


# ---------------------------------------------------------------------------- experiments
@register_experiment("paper")
def paper() -> ExperimentConfig:
    """The paper's setup: SalGAN as E on SAM at 256x192, 5:5:1:9:5, Adam 1e-3, 100 epochs.

    E's weights are SalGAN's, converted to ``weights/salgan.weights.h5``, and phi is
    ImageNet VGG19. Hardware settings (batch, precision, distribution) stay at their
    defaults; ``configs/sam.yaml`` sets them for a GPU.
    """
    return ExperimentConfig(
        run_dir="runs/paper",
        estimator="salgan:weights/salgan.weights.h5",
        data=DataConfig(dir="data/sam", image_size=(192, 256)),
        features=FeaturesConfig(weights="imagenet"),
        losses=LossConfig(),  # the paper's weights, sagim_tf.losses.PAPER_LOSS_WEIGHTS
        train=TrainConfig(epochs=100),
    )


#: The demo's VGG layers: the first three convolutions, where the paper's setup uses five
#: (the first two stages cost most of a CPU step at full resolution).
DEMO_FEATURE_LAYERS = ("block1_conv1", "block1_conv2", "block2_conv1")


#: The demo's weight of the settings prior (:mod:`sagim_tf.losses.settings`).
DEMO_SETTINGS_WEIGHT = 3.0


@register_experiment("demo-cpu")
def demo_cpu() -> ExperimentConfig:
    """What ``sagim demo`` trains on a CPU in about 5 minutes (departures: see the demo).

    The weight-free Itti-Koch E; a small G (16 base filters) with the photographic-operator
    head, its fields bent to the photo's edges by a guided filter of radius 6, and D (32);
    no adversarial term and content weight 20 (random VGG weights hold the picture more
    weakly); the locality term at 40 (no change where the guidance asks for none) and the
    settings prior at DEMO_SETTINGS_WEIGHT (each operator setting costs its share of its
    range, colour four times tone); mixed binary and continuous guiding maps; 96x72 images; 50 G steps an epoch
    with up to 1000 epochs, cut short by a 5-minute time budget. The demo trains the same
    setup with the residual head beside it, for comparison.
    """
    return ExperimentConfig(
        run_dir="runs/demo/run",
        estimator="itti-koch",
        data=DataConfig(
            dir="runs/demo/sam",
            image_size=(72, 96),
            val_split="test",
            shuffle_buffer=256,
            guidance="mixed",
        ),
        generator=GeneratorConfig(
            base_filters=16, depth=3, num_residual_blocks=2, head="operators", field_guide_radius=6
        ),
        discriminator=DiscriminatorConfig(base_filters=32, num_layers=3),
        features=FeaturesConfig(layers=DEMO_FEATURE_LAYERS),
        losses=LossConfig(adv=0.0, content=20.0, locality=40.0, settings=DEMO_SETTINGS_WEIGHT),
        train=TrainConfig(
            epochs=1000,
            batch_size=4,
            steps_per_epoch=50,
            seed=0,
            image_every_steps=100,
            verbose=2,
            time_budget_minutes=5.0,
        ),
    )


def _register_ablations():
    for variant in ABLATION_VARIANTS:

        def factory(variant=variant):
            full = replace_config(paper(), {"run_dir": "runs/ablation"})
            return ablation_variant(full, variant)

        register_experiment(f"ablation/{variant}", factory)


_register_ablations()
