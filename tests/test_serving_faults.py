"""Fault tests with real processes: a killed or failed ``sagim export`` never leaves a
servable version, and a version that arrives broken while ``sagim serve`` runs keeps the
old one serving until it is complete.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from sagim_tf.export import load_savedmodel
from sagim_tf.export.parity import check_parity
from sagim_tf.export.savedmodel import versions
from sagim_tf.serving import SagimServingClient
from tests.export_helpers import batch, free_port, shared_savedmodel, tiny_generator

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
# `sagim export` with a parity threshold no file can meet, so that its check always fails
FAILING_PARITY = (
    "import sys; from sagim_tf.export import parity; "
    "parity.TOLERANCES['savedmodel'] = -1.0; "
    "from sagim_tf.cli import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    g = tiny_generator()
    path = tmp_path_factory.mktemp("fault_model") / "g.keras"
    g.save(path)
    return g, str(path)


def _export(model_path, out, failing=False):
    argv = ["export", "--model", model_path, "--out", str(out), "--formats", "savedmodel"]
    head = [sys.executable, "-c", FAILING_PARITY] if failing else [sys.executable, "-m", "sagim_tf"]
    return subprocess.Popen(
        head + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )


def _hidden_with(base, name):
    """True if a hidden temporary folder under ``base`` holds ``name``."""
    try:
        entries = os.listdir(base)
    except FileNotFoundError:
        return False
    return any(e.startswith(".") and os.path.exists(os.path.join(base, e, name)) for e in entries)


def _kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_export_that_fails_or_is_killed_leaves_no_servable_version(model, tmp_path):
    _, model_path = model
    base = tmp_path / "export" / "sagim"
    # 1. the parity check fails: no version may appear at any moment of the run
    proc = _export(model_path, tmp_path / "export", failing=True)
    seen = set()
    while proc.poll() is None:
        seen.update(versions(base))
        time.sleep(0.005)
    err = proc.communicate(timeout=30)[1]
    assert proc.returncode == 2 and "version 1 was not published" in err, err
    assert not seen and versions(base) == [] and os.listdir(base) == []
    # 2. SIGKILL once the version is written, while it is being checked: nothing published
    proc = _export(model_path, tmp_path / "export")
    deadline = time.time() + 120
    while not _hidden_with(base, os.path.join("variables", "variables.index")):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.005)
    _kill(proc)
    assert versions(base) == [] and not [e for e in os.listdir(base) if e.isdigit()]
    assert [e for e in os.listdir(base) if e.startswith(".tmp-1-")]  # the killed one's folder
    # 3. the next export clears what the killed one left, and publishes its version
    proc = _export(model_path, tmp_path / "export")
    assert proc.wait(timeout=300) == 0, proc.communicate()
    proc.communicate()
    assert os.listdir(base) == ["1"] and versions(base) == [1]


@pytest.mark.slow
def test_sigkill_at_random_points_never_leaves_a_half_or_unchecked_version(model, tmp_path):
    g, model_path = model
    out = tmp_path / "export"
    base = out / "sagim"
    start = time.time()
    proc = _export(model_path, out)
    assert proc.wait(timeout=300) == 0, proc.communicate()
    full = time.time() - start
    rng = random.Random(15)
    killed = 0
    for _ in range(6):
        proc = _export(model_path, out)
        try:  # up to 1.1 x a full run: most runs are killed, at seeded random points
            proc.wait(timeout=rng.uniform(0.3, 1.1) * full)
        except subprocess.TimeoutExpired:
            _kill(proc)
            killed += 1
        else:
            proc.communicate()
        for v in versions(base):  # whatever is there is complete and checked
            report = check_parity(g, {"savedmodel": [str(base / str(v))]})
            assert report["savedmodel"] <= 1e-5  # float32 reordering in the graph
    assert killed >= 1
    assert versions(base)[0] == 1 and not [
        e for e in os.listdir(base) if not e.isdigit() and not e.startswith(".")
    ]
    proc = _export(model_path, out)  # the next export leaves nothing hidden behind
    assert proc.wait(timeout=300) == 0, proc.communicate()
    proc.communicate()
    assert all(e.isdigit() for e in os.listdir(base)), os.listdir(base)


def _wait_version(client, version, timeout=60):
    deadline = time.time() + timeout
    while client.metadata()["version"] != version:
        assert time.time() < deadline, f"version {version} was not picked up"
        time.sleep(0.1)


def test_a_corrupt_version_while_serving_keeps_the_old_one_and_is_retried(
    tmp_path_factory, tmp_path
):
    _, path, _ = shared_savedmodel(tmp_path_factory)
    base = tmp_path / "sagim"
    shutil.copytree(path, base / "1")
    # a killed export's complete staging folder, and one of an export still running: the
    # server's scan (versions()) never takes them for versions
    shutil.copytree(path, base / ".tmp-9-p1@elsewhere-abcd1234")
    shutil.copytree(path, base / ".tmp-8-legacy")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sagim_tf", "serve", "--model-base-path", str(base)]
        + ["--port", str(port), "--poll-interval", "0.1", "--grace", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )
    try:
        with SagimServingClient("127.0.0.1", port, timeout=30) as client:
            client.wait_ready(120)
            image, guidance = batch(1, 8, 8)
            before = client.edit(image, guidance)
            new = base / "2"
            new.mkdir()
            # as `cp -a` might: saved_model.pb first (mtime kept), variables later
            shutil.copy2(os.path.join(path, "saved_model.pb"), new / "saved_model.pb")
            (new / "variables").mkdir()
            data = os.path.join(path, "variables", "variables.data-00000-of-00001")
            with open(data, "rb") as f:  # a truncated data file: the copy is not done
                (new / "variables" / os.path.basename(data)).write_bytes(f.read()[:100])
            shutil.copy2(os.path.join(path, "variables", "variables.index"), new / "variables")
            for _ in range(5):  # several polls: the old version goes on serving (not 8 or 9)
                time.sleep(0.2)
                assert client.metadata()["version"] == 1
                assert (client.edit(image, guidance) == before).all()
            shutil.copytree(path, new, dirs_exist_ok=True, copy_function=shutil.copy2)
            _wait_version(client, 2)
            assert client.edit(image, guidance).shape == image.shape
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "version 2 under" in out and "cannot be loaded, keeping 1" in out
    load_savedmodel(base / "2")
