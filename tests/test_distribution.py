"""tf.distribute: 2 replicas on a CPU split in two equal 1 replica on the same global batch."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sagim_tf.utils.errors import ConfigError
from tests.train_helpers import ROOT, subprocess_env

STEPS = 2
GLOBAL_BATCH = 4


@pytest.fixture(scope="module")
def two_replicas(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("dist") / "result.npz")
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "distribution_check.py"), out,
         str(STEPS), str(GLOBAL_BATCH)],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = np.load(out)
    return json.loads(str(data["meta"])), data


def _close(a, b, what, rtol=1e-4, atol=1e-6):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)


def test_two_replicas_report_the_same_losses(two_replicas):
    meta, _ = two_replicas
    assert meta["replicas"] == 2
    assert len(meta["ref_steps"]) == len(meta["mir_steps"]) == STEPS
    for step, (ref, mir) in enumerate(zip(meta["ref_steps"], meta["mir_steps"])):
        assert set(ref) == set(mir)
        for key in ref:
            _close(mir[key], ref[key], f"step {step + 1} {key}")
    for key, value in meta["ref_epoch"].items():
        _close(meta["mir_epoch"][key], value, f"epoch {key}")


def test_two_replicas_make_the_same_updates(two_replicas):
    _, data = two_replicas
    keys = sorted(k for k in data.files if k.startswith("ref/"))
    assert any("/g_optimizer/" in k for k in keys) and any("/discriminator/" in k for k in keys)
    for key in keys:
        _close(data["mir/" + key[4:]], data[key], key)
    # The updates themselves (new - initial weights), not only the weights, agree.
    biggest = 0.0
    for key in keys:
        part = key.split("/")[1]
        if part not in ("generator", "discriminator"):
            continue
        start = data[f"start/{part}/{key.split('/')[2]}"]
        ref_update, mir_update = data[key] - start, data["mir/" + key[4:]] - start
        scale = np.abs(ref_update).max()
        biggest = max(biggest, scale)
        np.testing.assert_allclose(mir_update, ref_update, rtol=0, atol=1e-3 * scale + 1e-7,
                                   err_msg=f"update of {key}")
    assert biggest > 1e-4  # training did move the weights
    assert int(data["mir/g_optimizer/0"]) == int(data["mir/d_optimizer/0"]) == STEPS


def test_multi_worker_needs_tf_config(monkeypatch):
    from sagim_tf.training.run import is_chief, make_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        make_strategy("multi_worker")
    assert is_chief()
    cluster = {"worker": ["localhost:1", "localhost:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    assert not is_chief()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    assert is_chief()
    assert make_strategy("none").num_replicas_in_sync == 1
