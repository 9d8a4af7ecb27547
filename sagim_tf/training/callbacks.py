"""Training callbacks: per-epoch checkpoints for resume, image grids, a NaN guard, a time
budget, a SIGTERM handler that stops after the current step, and (several workers) one
stop for all."""

from __future__ import annotations

import glob
import json
import logging
import os
import signal
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from sagim_tf.inference.figures import heatmap as heatmap_u8
from sagim_tf.models.generate import generate
from sagim_tf.utils.io import atomic_write, save_image

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"


def g_step(model) -> int:
    """G's optimizer step count. ``int(variable)`` fails on a MirroredVariable (any
    tf.distribute strategy); reading it as an array works everywhere."""
    return int(np.asarray(model.g_optimizer.iterations))


# ---------------------------------------------------------------------------- checkpoints
def latest_checkpoint(checkpoint_dir) -> tuple[int, str] | None:
    """(completed epochs, weights path) of the newest finished checkpoint, or None.

    A checkpoint counts only once ``state.json`` names it, and the state file is
    replaced atomically after the weights file is complete, so a kill at any moment
    leaves either the previous checkpoint or the new one, never half of one.
    """
    state_path = os.path.join(checkpoint_dir, STATE_FILE)
    if not os.path.isfile(state_path):
        return None
    with open(state_path, encoding="utf-8") as f:
        state = json.load(f)
    path = os.path.join(checkpoint_dir, state["weights"])
    if not os.path.isfile(path):
        return None
    return int(state["epoch"]), path


class EpochCheckpoint(keras.callbacks.Callback):
    """Save G, D and both optimizers' state at the end of every epoch.

    Files are ``epoch-NNNN.weights.h5`` in ``checkpoint_dir`` (the newest ``keep`` are
    kept) plus ``state.json`` naming the newest. Each file is written under a temporary
    name and renamed.
    """

    def __init__(self, checkpoint_dir, keep=2, enabled=True):
        super().__init__()
        self.checkpoint_dir = os.fspath(checkpoint_dir)
        self.keep = max(1, int(keep))
        self.enabled = enabled

    def on_epoch_end(self, epoch, logs=None):
        if not self.enabled:
            return
        if getattr(self.model, "stop_training", False) and any(
            not np.isfinite(np.asarray(v)).all() for v in (logs or {}).values()
        ):
            # Stopped by the NaN guard mid-epoch: keep the last good checkpoint.
            return
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        name = f"epoch-{epoch + 1:04d}.weights.h5"
        atomic_write(
            os.path.join(self.checkpoint_dir, name),
            lambda tmp: self.model.save_weights(tmp),
            suffix=".weights.h5",
        )
        state = {
            "epoch": epoch + 1,
            "weights": name,
            "g_iterations": g_step(self.model),
            "logs": {k: float(v) for k, v in (logs or {}).items()},
        }

        def write_state(tmp):
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(state, f, indent=2)

        atomic_write(os.path.join(self.checkpoint_dir, STATE_FILE), write_state, suffix=".json")
        old = sorted(glob.glob(os.path.join(self.checkpoint_dir, "epoch-*.weights.h5")))
        for path in old[: -self.keep]:
            os.remove(path)


# ---------------------------------------------------------------------------- NaN guard
class NaNGuard(keras.callbacks.Callback):
    """Stop training at the first batch whose logged losses are not finite.

    ``message`` then says which terms went bad and at which step.
    """

    def __init__(self):
        super().__init__()
        self.message = None

    def on_train_batch_end(self, batch, logs=None):
        bad = {k: v for k, v in (logs or {}).items() if not np.isfinite(np.asarray(v)).all()}
        if bad:
            step = g_step(self.model)
            self.message = (
                f"non-finite loss at step {step}: "
                + ", ".join(f"{k}={float(np.asarray(v))}" for k, v in sorted(bad.items()))
                + ". Training stopped; lower the learning rates, check the data, or use "
                "precision float32."
            )
            logger.error("NaNGuard: %s", self.message)
            self.model.stop_training = True


# ---------------------------------------------------------------------------- time budget
class TimeBudget(keras.callbacks.Callback):
    """Stop training at the end of the first batch after ``seconds`` of training."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = float(seconds)
        self.stopped_early = False

    def on_train_begin(self, logs=None):
        self._start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() - self._start > self.seconds:
            self.model.stop_training = True
            self.stopped_early = True


# ---------------------------------------------------------------------------- preemption
class Preemption(keras.callbacks.Callback):
    """On SIGTERM, stop training at the end of the current step instead of dying mid-step.

    While ``fit`` runs, SIGTERM only sets a flag (Python runs the handler between
    TensorFlow calls, so the step in flight completes); the next batch end sets
    ``stop_training``, Keras ends the epoch as it does for :class:`TimeBudget` (the
    epoch-end checkpoint is written), and the caller reads :attr:`signalled` to write the
    model files and exit 143. The previous handler is restored when training ends. Outside
    the main thread (where Python cannot install handlers) it does nothing.
    """

    def __init__(self):
        super().__init__()
        self.signalled = False
        self.step = None
        self._previous = None

    def _handle(self, signum, frame):
        self.signalled = True

    def on_train_begin(self, logs=None):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def on_train_batch_end(self, batch, logs=None):
        if self.signalled and not self.model.stop_training:
            self.model.stop_training = True
            self.step = g_step(self.model)
            logger.warning("SIGTERM: stopping after G step %d; writing a checkpoint", self.step)

    def on_train_end(self, logs=None):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None


# ---------------------------------------------------------------------------- several workers
def cross_replica_sum(strategy):
    """A function that sums a float vector over all the strategy's replicas (every worker).

    Compiled: eagerly, the strategy all-reduces through a new thread pool per call and
    warns of its overhead each time; a pool left open by a lost peer's error then fails
    noisily at interpreter exit.
    """

    @tf.function
    def total(values):
        return strategy.reduce("SUM", strategy.run(lambda: tf.identity(values)), axis=None)

    return total


class SyncStop(keras.callbacks.Callback):
    """Under ``multi_worker``, make every worker stop after the same step.

    :class:`NaNGuard`, :class:`TimeBudget` and :class:`Preemption` decide on what one
    worker sees (its clock, the SIGTERM sent to its machine). A worker that stopped alone
    would leave the others waiting in the next step's all-reduce until they gave it up as
    lost. Placed after them, this sums the workers' (stop, SIGTERM) flags across the
    cluster at every batch end: when one worker stops, all stop after that step, and when
    one was sent SIGTERM, every worker's ``preemption`` reports it (each ends as preempted,
    the chief after writing its checkpoint and model files).
    """

    def __init__(self, strategy, preemption: Preemption | None = None):
        super().__init__()
        self.preemption = preemption
        self._sum = cross_replica_sum(strategy)

    def on_train_batch_end(self, batch, logs=None):
        signalled = bool(self.preemption is not None and self.preemption.signalled)
        flags = tf.constant([float(bool(self.model.stop_training)), float(signalled)])
        votes = self._sum(flags)
        stop, sigterm = (float(v) > 0 for v in np.asarray(votes))
        if sigterm and self.preemption is not None and not self.preemption.signalled:
            self.preemption.signalled = True
            self.preemption.step = g_step(self.model)
            logger.warning("a peer got SIGTERM: stopping after G step %d", self.preemption.step)
        if stop or sigterm:
            self.model.stop_training = True


# ---------------------------------------------------------------------------- image grid
def heatmap(saliency: np.ndarray) -> np.ndarray:
    """(H, W[, 1]) map in [0, 1] -> (H, W, 3) RGB heat map, float in [0, 1]."""
    return heatmap_u8(saliency).astype(np.float32) / 255.0


def grid_rows(model, image, guidance) -> np.ndarray:
    """One row per image: original | guidance | edited | E(original) | E(edited).

    G runs through its cached compiled generate step (the editor's).
    """
    edited = generate(model.generator, image, guidance)
    before = np.asarray(model.estimator(image, training=False))
    after = np.asarray(model.estimator(edited, training=False))
    rows = []
    for i in range(len(image)):
        panels = [image[i], heatmap(guidance[i]), edited[i], heatmap(before[i]), heatmap(after[i])]
        rows.append(np.concatenate(panels, axis=1))
    return np.concatenate(rows, axis=0)


class ImageGrid(keras.callbacks.Callback):
    """Every ``every_steps`` G steps, render a fixed sample batch as a grid.

    Written to TensorBoard (``log_dir``, tag ``samples``) and as
    ``png_dir/step-NNNNNN.png``. The columns are original | guidance | edited |
    E(original) | E(edited).
    """

    def __init__(self, image, guidance, every_steps, log_dir, png_dir):
        super().__init__()
        self.image = np.asarray(image, np.float32)
        self.guidance = np.asarray(guidance, np.float32)
        self.every_steps = int(every_steps)
        self.log_dir = os.fspath(log_dir)
        self.png_dir = os.fspath(png_dir)
        self._writer = None
        self.written = []

    def _write(self, step):
        grid = grid_rows(self.model, self.image, self.guidance)
        path = save_image(os.path.join(self.png_dir, f"step-{step:06d}.png"), grid)
        self.written.append(path)
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "images"))
        with self._writer.as_default():
            tf.summary.image("samples", grid[None], step=step)
        self._writer.flush()

    def on_train_batch_end(self, batch, logs=None):
        if self.every_steps <= 0:
            return
        step = g_step(self.model)
        if step % self.every_steps == 0:
            self._write(step)

    def on_train_end(self, logs=None):
        step = g_step(self.model)
        if self.every_steps > 0 and (
            not self.written or not self.written[-1].endswith(f"{step:06d}.png")
        ):
            self._write(step)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
