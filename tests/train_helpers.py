"""Helpers for the training tests: a tiny SAM set and a tiny, fast training config."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import yaml

from sagim_tf.data import split_size
from sagim_tf.training.callbacks import STATE_FILE
from tests.sam_helpers import save_test_estimator, tiny_build

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE_SIZE = (24, 32)  # (height, width), as data.image_size holds it
TRAIN_RECORDS = 8


def tiny_sam(root) -> tuple[str, str]:
    """Build a tiny SAM set (8 train, 4 test records at 32x24) -> (data dir, estimator spec).

    The estimator is the fixed contrast model saved as ``.keras``, so a subprocess can load
    it through the ``keras:PATH`` spec.
    """
    root = os.fspath(root)
    height, width = IMAGE_SIZE
    # The SAM builder takes (width, height).
    _, out, manifest = tiny_build(root, size=(width, height), train=TRAIN_RECORDS, test=4)
    assert split_size(out, "train") == TRAIN_RECORDS, manifest
    assert split_size(out, "test") == 4, manifest
    spec = save_test_estimator(os.path.join(root, "estimator.keras"))
    return out, spec


def tiny_config(data_dir, spec, run_dir, **sections) -> dict:
    """A config dict for a few-second run; ``sections`` update a section's keys."""
    cfg = {
        "run_dir": os.fspath(run_dir),
        "estimator": spec,
        "data": {
            "dir": os.fspath(data_dir),
            "image_size": {"height": IMAGE_SIZE[0], "width": IMAGE_SIZE[1]},
            "shuffle_buffer": 0,
            "flip": False,
        },
        "generator": {"base_filters": 4, "depth": 2, "num_residual_blocks": 1, "max_filters": 16},
        "discriminator": {"base_filters": 4, "num_layers": 2},
        "features": {"layers": ["block1_conv1", "block1_conv2"]},
        "losses": {"color_kernel_size": 5},
        "train": {"epochs": 2, "batch_size": 4, "image_every_steps": 2, "verbose": 0},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            cfg.setdefault(section, {}).update(values)
        else:
            cfg[section] = values
    return cfg


def write_config(path, cfg: dict) -> str:
    path = os.fspath(path)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return path


def subprocess_env(**extra) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "KERAS_BACKEND": "tensorflow",
            "PYTHONPATH": ROOT + os.pathsep + env.get("PYTHONPATH", ""),
            "CUDA_VISIBLE_DEVICES": "",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def run_sagim(args, timeout=120, **env) -> subprocess.CompletedProcess:
    """``python -m sagim_tf ARGS`` in a subprocess, text output captured."""
    return subprocess.run(
        [sys.executable, "-m", "sagim_tf", *args],
        cwd=ROOT,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_loopback_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports, index: int) -> str:
    """TF_CONFIG for worker ``index`` of a cluster of workers on 127.0.0.1 at ``ports``."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def read_run_state(checkpoint_dir):
    """A run's checkpoint state (its ``STATE_FILE``), or None while there is none to read."""
    try:
        with open(os.path.join(checkpoint_dir, STATE_FILE), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def wait_for_first_checkpoint(procs, checkpoint_dir, timeout=120):
    """Wait until the run's first epoch checkpoint is written, or one of ``procs`` ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and all(p.poll() is None for p in procs):
        state = read_run_state(checkpoint_dir)
        if state and state["epoch"] >= 1:
            return
        time.sleep(0.02)
