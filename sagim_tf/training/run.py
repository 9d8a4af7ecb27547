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

Under ``train.distribution: multi_worker`` every worker runs this same function (one
process per machine, ``TF_CONFIG`` telling each its place). The chief alone writes the run
folder; the other workers write nothing and read the chief's checkpoint from ``run_dir``
to resume, so ``run_dir`` must be one folder that every worker sees at the same path. A
worker that dies ends the others with :class:`WorkerLost` (docs/training.md).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import math
import os
import re

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
    SyncStop,
    TimeBudget,
    cross_replica_sum,
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


class WorkerLost(SagimError):
    """Multi-worker training lost a peer (it died, hung or became unreachable).

    The message names the peer and says what to run; every worker must be restarted, and
    the same command resumes from the chief's last checkpoint.
    """


#: What a collective op raises when a peer is gone: the coordination service reports the
#: missing heartbeats as UNAVAILABLE; a peer lost mid-transfer can surface as the others.
PEER_ERRORS = (
    tf.errors.UnavailableError,
    tf.errors.DeadlineExceededError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
)


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


def _tf_config(raw: str | None) -> dict:
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ConfigError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    return config


def is_chief(tf_config: str | None = None) -> bool:
    """True unless TF_CONFIG names this process as a non-chief worker.

    Args:
        tf_config: str or None. The TF_CONFIG JSON; None reads the environment variable.

    The chief is task ``chief`` when the cluster has one, else ``worker`` 0 (as
    ``MultiWorkerMirroredStrategy`` decides).
    """
    config = _tf_config(os.environ.get("TF_CONFIG") if tf_config is None else tf_config)
    if not config:
        return True
    task, cluster = config.get("task", {}), config.get("cluster", {})
    kind, index = task.get("type", "chief"), int(task.get("index", 0))
    if kind == "chief":
        return True
    return kind == "worker" and index == 0 and "chief" not in cluster


_TASK = re.compile(r"/job:(\w+)/replica:\d+/task:(\d+)")


def lost_peer(error_text: str, tf_config: str | None = None) -> str:
    """The peer a collective error names, as ``worker 1 (host:port)``; ``a peer`` if none.

    Args:
        error_text: str. The TensorFlow error's message; it names the tasks that stopped
            sending heartbeats as ``/job:worker/replica:0/task:1``.
        tf_config: str or None. The TF_CONFIG JSON, for the peer's address and to leave
            this process's own task out; None reads the environment variable.
    """
    config = _tf_config(os.environ.get("TF_CONFIG") if tf_config is None else tf_config)
    cluster, task = config.get("cluster", {}), config.get("task", {})
    seen = {(task.get("type"), int(task.get("index", 0)))}  # not this process itself
    peers = []
    for kind, index in _TASK.findall(error_text):
        if (kind, int(index)) in seen:
            continue
        seen.add((kind, int(index)))
        addresses = cluster.get(kind, [])
        address = addresses[int(index)] if int(index) < len(addresses) else None
        peers.append(f"{kind} {index} ({address})" if address else f"{kind} {index}")
    return " and ".join(peers) if peers else "a peer"


_NOT_A_REASON = ("Graph execution error", "Detected at node", "Additional GRPC", ":UNKNOWN", "[[")


def error_reason(text: str) -> str:
    """The line of a TensorFlow error message that says what went wrong.

    Eager errors start with the op (``{{function_node ...}}``), graph errors with ``Graph
    execution error:`` and the Python stack of the node (indented lines); both are left out.
    """
    for line in re.sub(r"\{\{.*?\}\}\s*", "", text).splitlines():
        if line.strip() and not line[0].isspace() and not line.startswith(_NOT_A_REASON):
            return line.strip()
    return text.strip().splitlines()[0] if text.strip() else ""


def worker_lost_message(error, tf_config, g_steps, checkpoint_dir) -> str:
    """What :class:`WorkerLost` says: the peer, where training stopped and how to resume."""
    reason = error_reason(str(getattr(error, "message", error)))
    resumed = latest_checkpoint(checkpoint_dir)
    saved = (
        f"the last checkpoint is epoch {resumed[0]} in {checkpoint_dir!r}"
        if resumed
        else "no epoch has been checkpointed yet"
    )
    return (
        f"multi-worker training lost {lost_peer(str(error), tf_config)} after G step "
        f"{g_steps} ({type(error).__name__}: {reason}); {saved}. Start every worker again "
        "with the same command to resume."
    )


def check_same_start(strategy, initial_epoch: int, checkpoint_dir: str) -> None:
    """Refuse to train unless every worker resumes from the same epoch.

    A worker that cannot read the chief's checkpoint (``run_dir`` not shared) would start
    from epoch 0 and run a different number of steps than the others, which hangs them
    in a collective. One all-reduce of (epoch, epoch squared) tells: the epochs are all
    equal exactly when n * sum(e^2) == sum(e)^2.
    """
    if strategy.num_replicas_in_sync == 1:
        return
    e = float(initial_epoch)
    sums = cross_replica_sum(strategy)(tf.constant([e, e * e, 1.0]))
    total, squares, n = (float(x) for x in np.asarray(sums))
    if n * squares != total * total:
        raise ConfigError(
            f"the workers would resume from different epochs (this one: {initial_epoch}, "
            f"mean over all: {total / n:g}); run_dir must be one folder that every worker "
            f"sees at the same path (a shared file system); this worker reads {checkpoint_dir!r}"
        )


def adapt_to_multi_worker(model) -> None:
    """Make ``model.fit`` run under ``MultiWorkerMirroredStrategy`` in Keras 3 / TF 2.21.

    Two Keras bugs (tensorflow/tensorflow#72388) stop it on the first step: ``fit``'s
    "symbolic build" all-reduces the first batch as a mean, which the strategy cannot do
    for a tuple (``ValueError`` on a ``PerReplica``); and the logs each replica returns are
    all-reduced as ``reduce("MEAN", v, axis=0)``, which fails on a scalar. SaGIM builds all
    its weights and optimizer slots in its constructor and ``compile``, so the first is
    skipped; the second gets each log as a one-element vector, whose mean over axis 0
    across the replicas is the scalar every replica's log stands for (equal halves of the
    global batch, so the mean of the replicas' means is the batch's mean).
    """
    train_step, test_step = model.train_step, model.test_step

    def as_vectors(logs):
        return {k: tf.reshape(v, [1]) for k, v in logs.items()}

    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    model.train_step = lambda data: as_vectors(train_step(data))
    model.test_step = lambda data: as_vectors(test_step(data))


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
        records = split_size(cfg.data.dir, cfg.data.val_split)
        batches = math.ceil(records / cfg.train.batch_size)
        val = val.apply(tf.data.experimental.assert_cardinality(batches))
        if cfg.train.distribution == "multi_worker":
            # Whole global batches only: a last batch smaller than the replicas' number
            # leaves a replica an empty batch, on which the losses cannot be computed.
            batches = records // cfg.train.batch_size
            if batches == 0:
                raise ConfigError(
                    f"data.val_split {cfg.data.val_split!r} has {records} record(s), fewer "
                    f"than train.batch_size {cfg.train.batch_size}; multi_worker validates "
                    "on whole global batches (use a larger split, a smaller batch, or "
                    "data.val_split '')"
                )
            val = val.take(batches)
        if cfg.data.val_steps:
            val = val.take(cfg.data.val_steps)
    if cfg.train.distribution == "multi_worker":
        # Every worker reads the same seeded pipeline and keeps its replicas' part of each
        # global batch, so the workers' batches together are exactly one process's.
        # (AUTO would shard by file: uneven when the shards do not divide evenly.)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        train = train.with_options(options)
        val = val.with_options(options) if val is not None else None
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
        "replicas", "chief", "model_object"}``; ``g_steps`` counts every G step the run has
        made, resumed ones included; ``outputs`` is empty on a non-chief worker.

    Raises:
        WorkerLost: under ``multi_worker``, when a peer dies or stops answering.
    """
    manifest = check_data(cfg)
    strategy = make_strategy(cfg.train.distribution)
    multi_worker = cfg.train.distribution == "multi_worker"
    # A non-chief worker writes nothing: it reads the chief's checkpoints to resume.
    chief = is_chief() if multi_worker else True
    run_dir = prepare_run_dir(cfg) if chief else cfg.run_dir
    checkpoint_dir = os.path.join(run_dir, "checkpoints")
    keras.utils.set_random_seed(cfg.train.seed)
    if os.environ.get("SAGIM_DETERMINISTIC", "") not in ("", "0"):
        # Bitwise-reproducible ops (slower); used by the resume test.
        tf.config.experimental.enable_op_determinism()
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(POLICIES[cfg.train.precision])
    model = None
    try:
        train, val = make_datasets(cfg)
        with strategy.scope():
            model = build_model(cfg, estimator=estimator)
        if multi_worker:
            adapt_to_multi_worker(model)
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
        if multi_worker:
            check_same_start(strategy, initial_epoch, checkpoint_dir)
        guard = NaNGuard()
        preemption = Preemption()
        callbacks = [
            guard,
            preemption,
            EpochCheckpoint(checkpoint_dir, keep=cfg.train.keep_checkpoints, enabled=chief),
        ]
        if chief:
            callbacks.append(
                keras.callbacks.TensorBoard(
                    log_dir=os.path.join(run_dir, "logs"), update_freq="epoch"
                )
            )
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
        if multi_worker:
            callbacks.append(SyncStop(strategy, preemption))  # last: after every stop
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
            "chief": chief,
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
    except PEER_ERRORS as exc:
        if not multi_worker:
            raise
        steps = g_step(model) if model is not None else 0
        message = worker_lost_message(exc, os.environ.get("TF_CONFIG"), steps, checkpoint_dir)
        log.debug("the collective error in full: %s", exc)
        # The error's frames hold the thread pool of the eager all-reduce it came from,
        # unclosed; freed at interpreter exit it prints "Exception ignored ... Bad file
        # descriptor". Free it now, while its pipes are open.
        exc.__traceback__ = None
        gc.collect()
        raise WorkerLost(message) from None
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
