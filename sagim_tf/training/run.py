"""One training run from an :class:`~sagim_tf.training.config.ExperimentConfig`.

``run_training(config)`` is what ``scripts/train.py`` and ``sagim train`` call. It

* checks the config and the data before any work starts;
* sets the precision policy and the ``tf.distribute`` strategy, and builds the model
  inside the strategy's scope;
* resumes from the newest checkpoint in ``<run_dir>/checkpoints`` when there is one
  (the same command, run again after a kill, continues where it stopped);
* runs ``model.fit`` with validation, TensorBoard scalars for every loss term, image grids,
  per-epoch checkpoints, a NaN guard, a progress bar and (``train.time_budget_minutes``)
  a time budget;
* saves ``config.yaml`` at the start and ``generator.keras`` (G alone) and
  ``sagim.keras`` (G, D, E, features and optimizers) at the end, beside it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os

import keras
import numpy as np
import tensorflow as tf

from sagim_tf.data import eval_dataset, read_manifest, split_size, train_dataset
from sagim_tf.estimators import build_estimator
from sagim_tf.models.content_features import ContentFeatures
from sagim_tf.models.discriminator import PatchDiscriminator
from sagim_tf.models.generator import SaGIMGenerator
from sagim_tf.models.sagim import SaGIM
from sagim_tf.training.callbacks import (
    EpochCheckpoint,
    ImageGrid,
    NaNGuard,
    Preemption,
    TimeBudget,
    g_step,
    latest_checkpoint,
)
from sagim_tf.training.config import (
    ExperimentConfig,
    config_from_dict,
    read_config_file,
    save_config,
    to_dict,
)
from sagim_tf.utils.errors import ConfigError, InputError, Preempted, SagimError
from sagim_tf.utils.io import atomic_write

log = logging.getLogger(__name__)

POLICIES = {"float32": "float32", "mixed_float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
# Fields that may change between a run and its resumption.
RESUMABLE_CHANGES = {
    ("train", "epochs"),
    ("train", "verbose"),
    ("train", "image_every_steps"),
    ("train", "time_budget_minutes"),
}


class TrainingDiverged(SagimError, FloatingPointError):
    """A loss went NaN or infinite; the message names the step and the terms."""


def make_strategy(distribution: str):
    """The ``tf.distribute`` strategy that ``train.distribution`` names."""
    if distribution == "none":
        return tf.distribute.get_strategy()
    if distribution == "mirrored":
        return tf.distribute.MirroredStrategy()
    if distribution == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ConfigError(
                "train.distribution=multi_worker needs the TF_CONFIG environment variable "
                "(cluster and task) on every worker"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"train.distribution: unknown value {distribution!r}")


def is_chief() -> bool:
    """True unless TF_CONFIG names this process as a non-chief worker."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return True
    task = json.loads(raw).get("task", {})
    cluster = json.loads(raw).get("cluster", {})
    kind, index = task.get("type", "chief"), int(task.get("index", 0))
    if kind == "chief":
        return True
    return kind == "worker" and index == 0 and "chief" not in cluster


def make_optimizer(cfg, name):
    """The Keras optimizer an :class:`~sagim_tf.training.config.OptimizerConfig` describes."""
    kwargs = {"learning_rate": cfg.learning_rate, "name": name}
    if cfg.clipnorm:
        kwargs["clipnorm"] = cfg.clipnorm
    if cfg.name == "adam":
        return keras.optimizers.Adam(beta_1=cfg.beta_1, beta_2=cfg.beta_2, **kwargs)
    if cfg.name == "adamw":
        return keras.optimizers.AdamW(
            beta_1=cfg.beta_1, beta_2=cfg.beta_2, weight_decay=cfg.weight_decay, **kwargs
        )
    if cfg.name == "sgd":
        return keras.optimizers.SGD(momentum=cfg.beta_1, **kwargs)
    raise ConfigError(f"unknown optimizer {cfg.name!r}")  # pragma: no cover (validated)


def build_model(cfg: ExperimentConfig, estimator=None):
    """SaGIM from a config, compiled with its optimizers, loss weights and jit setting."""
    f = cfg.features
    model = SaGIM(
        generator=SaGIMGenerator(
            **dataclasses.asdict(cfg.generator), work_size=max(cfg.data.image_size)
        ),
        discriminator=PatchDiscriminator(**dataclasses.asdict(cfg.discriminator)),
        estimator=(
            estimator
            if estimator is not None
            else build_estimator(cfg.estimator, jit_compile=cfg.train.jit_compile)
        ),
        content_features=ContentFeatures(
            arch=f.arch,
            layers=f.layers,
            weights=f.weights,
            seed=f.seed,
            feature_scale=f.feature_scale,
        ),
        color_kernel_size=cfg.losses.color_kernel_size,
    )
    model.compile(
        g_optimizer=make_optimizer(cfg.g_optimizer, "g_optimizer"),
        d_optimizer=make_optimizer(cfg.d_optimizer, "d_optimizer"),
        loss_weights=cfg.losses.weights(),
        adv_warmup_steps=cfg.losses.adv_warmup_steps,
        jit_compile=cfg.train.jit_compile,
    )
    return model


def check_data(cfg: ExperimentConfig) -> dict:
    """The SAM manifest, after checking that the folder and the splits exist."""
    if not os.path.isdir(cfg.data.dir):
        raise InputError(
            f"data.dir {cfg.data.dir!r} does not exist; build it with `sagim build-sam` "
            "(see docs/dataset.md)"
        )
    manifest = read_manifest(cfg.data.dir)
    splits = [cfg.data.train_split] + ([cfg.data.val_split] if cfg.data.val_split else [])
    for split in splits:
        if split_size(cfg.data.dir, split) < 1:
            raise InputError(f"data.dir {cfg.data.dir!r} has no records in split {split!r}")
    return manifest


def steps_per_epoch(cfg: ExperimentConfig) -> int:
    """``train.steps_per_epoch``, or (0) the batches that cover the training split once."""
    if cfg.train.steps_per_epoch:
        return cfg.train.steps_per_epoch
    return max(1, math.ceil(split_size(cfg.data.dir, cfg.data.train_split) / cfg.train.batch_size))


def make_datasets(cfg: ExperimentConfig):
    """(train, validation or None): batches of (image, guidance) at the configured size.

    Both have a known length: the training set repeats (``fit`` gets
    :func:`steps_per_epoch`) and the validation set asserts its batch count. On a dataset
    of unknown length, Keras 3 / TF 2.21 runs one extra, half-executed step when the data
    run out: the optimizer's ``iterations`` and the loss trackers' counts advance without
    data, so Adam's step count drifts and epoch and validation means come out too small.
    """
    height, width = cfg.data.image_size
    size = (width, height)  # the data pipeline takes (width, height)
    train = train_dataset(
        cfg.data.dir,
        split=cfg.data.train_split,
        batch_size=cfg.train.batch_size,
        size=size,
        shuffle=cfg.data.shuffle_buffer > 0,
        shuffle_buffer=max(1, cfg.data.shuffle_buffer),
        flip=cfg.data.flip,
        seed=cfg.train.seed,
        repeat=True,  # fit gets steps_per_epoch(cfg), so no epoch ends on exhausted data
        drop_remainder=cfg.train.distribution != "none",
        guidance=cfg.data.guidance,
    )
    val = None
    if cfg.data.val_split:
        # "mixed" validates on the continuous maps, so val losses stay comparable.
        key = "guidance_binary" if cfg.data.guidance == "binary" else "guidance"
        val = eval_dataset(
            cfg.data.dir, split=cfg.data.val_split, batch_size=cfg.train.batch_size, size=size
        )
        val = val.map(lambda d: (d["image"], d[key]))
        batches = math.ceil(split_size(cfg.data.dir, cfg.data.val_split) / cfg.train.batch_size)
        val = val.apply(tf.data.experimental.assert_cardinality(batches))
        if cfg.data.val_steps:
            val = val.take(cfg.data.val_steps)
    return train, val


def _config_differences(a: dict, b: dict, prefix=()):
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            yield from _config_differences(va, vb, prefix + (key,))
        elif va != vb:
            yield prefix + (key,), va, vb


def prepare_run_dir(cfg: ExperimentConfig) -> str:
    """Create the run folder and save the config; on resume, refuse a different config.

    A folder whose run has no checkpoint yet (it failed before its first epoch ended)
    takes the new config: there is nothing to resume, so nothing to protect.
    """
    run_dir = cfg.run_dir
    path = os.path.join(run_dir, "config.yaml")
    if os.path.isfile(path):
        try:
            saved = to_dict(config_from_dict(read_config_file(path)))
        except ConfigError as exc:
            raise ConfigError(
                f"run_dir {run_dir!r} holds a config.yaml this version cannot read ({exc}). "
                "Choose another run_dir, or fix that file to resume the run."
            ) from None
        diffs = [
            (".".join(k), old, new)
            for k, old, new in _config_differences(saved, to_dict(cfg))
            if k not in RESUMABLE_CHANGES
        ]
        if diffs and latest_checkpoint(os.path.join(run_dir, "checkpoints")) is None:
            # A run that failed before its first checkpoint holds nothing to resume: its
            # config must not block the corrected command.
            log.info("run_dir %r has no checkpoint yet; replacing its config.yaml", run_dir)
            diffs = []
        if diffs:
            shown = "; ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in diffs[:5])
            raise ConfigError(
                f"run_dir {run_dir!r} holds a run with a different config ({shown}). "
                "Resume with the same config, or choose another run_dir."
            )
    os.makedirs(run_dir, exist_ok=True)
    save_config(cfg, path)
    return run_dir


def _sample_batch(train, count=4):
    for image, guidance in train.take(1):
        return np.asarray(image)[:count], np.asarray(guidance)[:count]
    raise InputError("the training split yielded no batch")


def run_training(cfg: ExperimentConfig, estimator=None, extra_callbacks=()) -> dict:
    """Train (or resume) the run that ``cfg`` describes; returns a summary dict.

    Args:
        cfg: ExperimentConfig. The run.
        estimator: a Keras model or None. E, instead of building ``cfg.estimator``.
            Defaults to None.
        extra_callbacks: sequence of ``keras.callbacks.Callback``. Added after the run's
            own. Defaults to none.

    Returns:
        ``{"run_dir", "initial_epoch", "epochs", "g_steps", "history", "outputs", "data",
        "replicas", "model_object"}``; ``g_steps`` counts every G step the run has made,
        resumed ones included.
    """
    manifest = check_data(cfg)
    strategy = make_strategy(cfg.train.distribution)
    chief = is_chief()
    run_dir = prepare_run_dir(cfg) if chief else os.path.join(cfg.run_dir, ".worker")
    os.makedirs(run_dir, exist_ok=True)
    checkpoint_dir = os.path.join(run_dir, "checkpoints")
    keras.utils.set_random_seed(cfg.train.seed)
    if os.environ.get("SAGIM_DETERMINISTIC", "") not in ("", "0"):
        # Bitwise-reproducible ops (slower); used by the resume test.
        tf.config.experimental.enable_op_determinism()
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(POLICIES[cfg.train.precision])
    try:
        train, val = make_datasets(cfg)
        with strategy.scope():
            model = build_model(cfg, estimator=estimator)
        log.info(
            "estimator %s; content features: %s",
            cfg.estimator,
            model.content_features.weights_source,
        )
        initial_epoch = 0
        resumed = latest_checkpoint(checkpoint_dir)
        if resumed is not None:
            initial_epoch, weights_path = resumed
            model.load_weights(weights_path)
            log.info(
                "Resuming from %s: %d epoch(s) done, G step %d",
                weights_path,
                initial_epoch,
                g_step(model),
            )
        guard = NaNGuard()
        preemption = Preemption()
        callbacks = [
            guard,
            preemption,
            EpochCheckpoint(checkpoint_dir, keep=cfg.train.keep_checkpoints, enabled=chief),
            keras.callbacks.TensorBoard(log_dir=os.path.join(run_dir, "logs"), update_freq="epoch"),
        ]
        if cfg.train.image_every_steps > 0 and chief:
            image, guidance = _sample_batch(train)
            callbacks.append(
                ImageGrid(
                    image,
                    guidance,
                    cfg.train.image_every_steps,
                    os.path.join(run_dir, "logs"),
                    os.path.join(run_dir, "samples"),
                )
            )
        if cfg.train.time_budget_minutes > 0:
            callbacks.append(TimeBudget(cfg.train.time_budget_minutes * 60.0))
        callbacks.extend(extra_callbacks)
        history = {}
        if initial_epoch < cfg.train.epochs:
            result = model.fit(
                train,
                epochs=cfg.train.epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch(cfg),
                validation_data=val,
                callbacks=callbacks,
                verbose=cfg.train.verbose,
            )
            history = {k: [float(x) for x in v] for k, v in result.history.items()}
        else:
            log.info(
                "Nothing to do: %d of %d epochs already done.", initial_epoch, cfg.train.epochs
            )
        if guard.message:
            raise TrainingDiverged(guard.message)
        outputs = {}
        if chief:
            outputs["generator"] = os.path.join(run_dir, "generator.keras")
            outputs["model"] = os.path.join(run_dir, "sagim.keras")
            atomic_write(
                outputs["generator"], lambda tmp: model.generator.save(tmp), suffix=".keras"
            )
            atomic_write(outputs["model"], lambda tmp: model.save(tmp), suffix=".keras")
        summary = {
            "run_dir": run_dir,
            "initial_epoch": initial_epoch,
            "epochs": cfg.train.epochs,
            "g_steps": g_step(model),
            "history": history,
            "outputs": outputs,
            "data": {"dir": cfg.data.dir, "counts": manifest.get("counts")},
            "replicas": strategy.num_replicas_in_sync,
        }
        if chief:
            with open(os.path.join(run_dir, "history.json"), "a", encoding="utf-8") as f:
                f.write(json.dumps({"initial_epoch": initial_epoch, "history": history}) + "\n")
        if preemption.signalled:
            raise Preempted(
                f"stopped by SIGTERM after G step {summary['g_steps']}; the checkpoint and "
                f"the model files in {run_dir!r} are written. Run the same command to resume.",
                summary,
            )
        summary["model_object"] = model
        return summary
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
