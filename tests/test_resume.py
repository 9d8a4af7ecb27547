"""Resume: kill a real `scripts/train.py` process and run the same command again."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from sagim_tf.training.callbacks import latest_checkpoint
from sagim_tf.training.config import load_config
from sagim_tf.training.run import build_model
from tests.train_helpers import (
    ROOT,
    read_run_state,
    subprocess_env,
    tiny_config,
    tiny_sam,
    wait_for_first_checkpoint,
    write_config,
)

EPOCHS = 6
STEPS = 2  # 2 x batch 4 = the 8 training records: every epoch sees the same batches


@pytest.fixture(scope="module")
def sam(tmp_path_factory):
    return tiny_sam(tmp_path_factory.mktemp("sam"))


def _config(sam, run_dir, **sections):
    data_dir, spec = sam
    cfg = tiny_config(
        data_dir,
        spec,
        run_dir,
        data={"val_split": "", "shuffle_buffer": 0, "flip": False},
        train={
            "epochs": EPOCHS,
            "steps_per_epoch": STEPS,
            "image_every_steps": 0,
            "verbose": 2,
            "keep_checkpoints": 2,
        },
    )
    for section, values in sections.items():
        cfg[section].update(values)
    return cfg


def _command(config_path):
    return [sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--config", str(config_path)]


def _env():
    return subprocess_env(SAGIM_DETERMINISTIC="1")


def _run_to_end(config_path, cwd):
    """The training command for ``config_path``, run to its end."""
    return subprocess.run(
        _command(config_path), cwd=str(cwd), env=_env(), capture_output=True, text=True, timeout=300
    )


def _snapshot(cfg, weights_path):
    """G, D and both optimizers' variables after loading a checkpoint into a fresh model."""
    model = build_model(cfg)
    model.load_weights(weights_path)
    parts = {
        "G": model.generator.weights,
        "D": model.discriminator.weights,
        "g_opt": model.g_optimizer.variables,
        "d_opt": model.d_optimizer.variables,
    }
    return {k: [np.array(v) for v in vs] for k, vs in parts.items()}


def _assert_snapshots_close(a, b, atol):
    for part in a:
        assert len(a[part]) == len(b[part]), part
        for i, (x, y) in enumerate(zip(a[part], b[part])):
            np.testing.assert_allclose(x, y, atol=atol, rtol=0, err_msg=f"{part}[{i}]")


def kill_and_resume(sam, tmp_path, **sections):
    """Start training, SIGKILL it after its first checkpoint, check it, resume to the end."""
    run_dir = tmp_path / "run"
    config_path = write_config(tmp_path / "tiny.yaml", _config(sam, run_dir, **sections))
    cfg = load_config(config_path)
    checkpoint_dir = os.path.join(str(run_dir), "checkpoints")

    log_path = tmp_path / "first.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            _command(config_path),
            cwd=str(tmp_path),
            env=_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_first_checkpoint([proc], checkpoint_dir)
            time.sleep(0.1)  # land anywhere: mid-epoch, mid-checkpoint
            assert proc.poll() is None, (
                "training ended before it could be killed:\n" + log_path.read_text()
            )
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # The checkpoint left behind is complete and consistent.
    state = read_run_state(checkpoint_dir)
    assert state is not None, log_path.read_text()
    killed_at = state["epoch"]
    assert 1 <= killed_at < EPOCHS
    assert state["g_iterations"] == killed_at * STEPS
    found = latest_checkpoint(checkpoint_dir)
    assert found == (killed_at, os.path.join(checkpoint_dir, state["weights"]))
    assert os.path.isfile(found[1])
    snapshot = _snapshot(cfg, found[1])
    assert int(snapshot["g_opt"][0]) == killed_at * STEPS  # iterations is the first variable
    assert int(snapshot["d_opt"][0]) == killed_at * STEPS
    assert any(np.abs(v).max() > 0 for v in snapshot["g_opt"][2:])  # Adam moments restored

    # The same command again continues from that checkpoint and finishes.
    result = _run_to_end(config_path, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # The resume is logged (stderr, through the CLI's handler); Keras' progress is on stdout.
    assert f"{killed_at} epoch(s) done, G step {killed_at * STEPS}" in result.stderr, result.stderr
    assert f"Epoch {killed_at + 1}/{EPOCHS}" in result.stdout
    assert f"Epoch {killed_at}/{EPOCHS}" not in result.stdout  # finished epochs are not redone
    final = read_run_state(checkpoint_dir)
    assert final["epoch"] == EPOCHS and final["g_iterations"] == EPOCHS * STEPS
    assert os.path.isfile(os.path.join(str(run_dir), "generator.keras"))
    return cfg, final, killed_at


def test_killed_training_resumes(sam, tmp_path):
    # Without the cycle and content terms the graph (and its tracing) is smaller.
    cfg, final, _ = kill_and_resume(sam, tmp_path, losses={"cycle": 0.0, "content": 0.0})
    end = _snapshot(cfg, os.path.join(cfg.run_dir, "checkpoints", final["weights"]))
    assert int(end["g_opt"][0]) == int(end["d_opt"][0]) == EPOCHS * STEPS


@pytest.mark.slow
def test_resumed_run_equals_uninterrupted_run(sam, tmp_path):
    (tmp_path / "killed").mkdir()
    cfg, final, _ = kill_and_resume(sam, tmp_path / "killed")
    resumed = _snapshot(cfg, os.path.join(cfg.run_dir, "checkpoints", final["weights"]))

    whole_dir = tmp_path / "whole"
    whole_dir.mkdir()
    config_path = write_config(whole_dir / "tiny.yaml", _config(sam, whole_dir / "run"))
    result = _run_to_end(config_path, whole_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Resuming" not in result.stdout + result.stderr
    whole_cfg = load_config(config_path)
    whole_state = read_run_state(os.path.join(whole_cfg.run_dir, "checkpoints"))
    whole = _snapshot(
        whole_cfg, os.path.join(whole_cfg.run_dir, "checkpoints", whole_state["weights"])
    )
    _assert_snapshots_close(resumed, whole, atol=1e-5)


def test_sigterm_stops_after_the_step_saves_and_the_same_command_resumes(sam, tmp_path):
    """SIGTERM: the step in flight finishes, the checkpoint and .keras files are written,
    the process says so and exits 143; the same command resumes from that G step."""
    run_dir = tmp_path / "run"
    config_path = write_config(
        tmp_path / "tiny.yaml",
        _config(sam, run_dir, losses={"cycle": 0.0, "content": 0.0}),
    )
    checkpoint_dir = os.path.join(str(run_dir), "checkpoints")
    proc = subprocess.Popen(
        _command(config_path),
        cwd=str(tmp_path),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_first_checkpoint([proc], checkpoint_dir)
        assert proc.poll() is None, "training ended before it could be stopped"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, out + err
    assert "stopped by SIGTERM after G step" in err and "Run the same command" in err, err
    stopped_at = int(err.split("stopped by SIGTERM after G step ")[1].split(";")[0])
    state = read_run_state(checkpoint_dir)
    # the checkpoint holds the step the process stopped at, not an earlier epoch's
    assert state["g_iterations"] == stopped_at >= STEPS
    for name in ("generator.keras", "sagim.keras"):
        assert os.path.isfile(os.path.join(str(run_dir), name)), name

    result = _run_to_end(config_path, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"G step {stopped_at}" in result.stderr, result.stderr
    final = read_run_state(checkpoint_dir)
    assert final["epoch"] == EPOCHS
    assert final["g_iterations"] == stopped_at + (EPOCHS - state["epoch"]) * STEPS
