"""``train.distribution: multi_worker`` for real: two worker processes on loopback.

The slow tests start two processes with TF_CONFIG (one worker each, gRPC collectives on
127.0.0.1) and check that they train as one process does on the same global batches, that
only the chief writes, and that a killed worker ends the chief with a message and the same
command resumes. The fast ones check the pure helpers behind that.
"""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from sagim_tf.training.callbacks import STATE_FILE, Preemption, SyncStop
from sagim_tf.training.config import config_from_dict
from sagim_tf.training.run import (
    check_same_start,
    error_reason,
    is_chief,
    lost_peer,
    make_datasets,
    worker_lost_message,
)
from sagim_tf.utils.errors import ConfigError
from tests.train_helpers import (
    ROOT,
    free_loopback_ports,
    subprocess_env,
    tf_config,
    tiny_config,
    wait_for_first_checkpoint,
    write_config,
)

EPOCHS = 2
STEPS = 2  # per epoch; global batch 4 = 2 per worker; 8 records: every epoch the same 2 batches
# Plain SGD, as tests/distribution_check.py explains. At learning rate 0.05 the 4 steps of
# the GAN amplified the first step's rounding noise to 1.8e-3 of G's step size; at 0.02
# it stays at 1e-5.
SGD = {"name": "sgd", "learning_rate": 0.02, "beta_1": 0.0}
CHECK = os.path.join(ROOT, "tests", "multi_worker_check.py")
#: A lost peer is reported by the coordination service after its heartbeat timeout (10 s
#: in TF 2.21); the rest is slack for a loaded 2-core machine.
LOST_PEER_SECONDS = 120


def _config(sam, run_dir, distribution, **train):
    data_dir, spec = sam
    return tiny_config(
        data_dir,
        spec,
        run_dir,
        data={"shuffle_buffer": 0, "flip": False},
        g_optimizer=dict(SGD),
        d_optimizer=dict(SGD),
        train={
            "epochs": EPOCHS,
            "steps_per_epoch": STEPS,
            "batch_size": 4,
            "image_every_steps": 2,
            "verbose": 2,
            "keep_checkpoints": 2,
            "distribution": distribution,
            **train,
        },
    )


def _env(tf_config_json=None, **extra):
    env = subprocess_env(**extra)
    env.pop("TF_CONFIG", None)
    if tf_config_json is not None:
        env["TF_CONFIG"] = tf_config_json
    return env


def _start_workers(command, ports, tmp_path, name):
    """One process per worker; worker i runs in its own empty folder with its own TMPDIR."""
    procs = []
    for index in range(len(ports)):
        home = tmp_path / f"{name}-worker{index}"
        (home / "tmp").mkdir(parents=True)
        log = open(tmp_path / f"{name}-worker{index}.log", "w")
        procs.append(
            subprocess.Popen(
                [sys.executable, *command(index)],
                cwd=str(home),
                env=_env(tf_config(ports, index), TMPDIR=str(home / "tmp")),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        log.close()
    return procs


def _wait_all(procs, timeout):
    deadline = time.monotonic() + timeout
    try:
        return [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _log(tmp_path, name, index):
    return (tmp_path / f"{name}-worker{index}.log").read_text()


def _files(root):
    """Files under ``root``, relative, with TensorBoard's host.pid names made generic."""
    found = set()
    for path in glob.glob(os.path.join(root, "**", "*"), recursive=True):
        if os.path.isfile(path):
            rel = os.path.relpath(path, root)
            found.add(re.sub(r"events\.out\.tfevents\..*", "events.out.tfevents.*", rel))
    return found


# ---------------------------------------------------------------------- two workers train
@pytest.fixture(scope="module")
def two_workers(tiny_sam, tmp_path_factory):
    """Two workers and, after them, one process on the same config (distribution none)."""
    tmp_path = tmp_path_factory.mktemp("multi-worker")
    ports = free_loopback_ports(2)
    config = write_config(
        tmp_path / "multi.yaml", _config(tiny_sam, tmp_path / "run", "multi_worker")
    )
    outs = [str(tmp_path / f"worker{i}.npz") for i in range(2)]
    started = time.monotonic()
    procs = _start_workers(lambda i: [CHECK, config, outs[i]], ports, tmp_path, "train")
    codes = _wait_all(procs, timeout=400)
    logs = [_log(tmp_path, "train", i) for i in range(2)]
    assert codes == [0, 0], "\n----\n".join(logs)
    seconds = time.monotonic() - started

    ref_config = write_config(tmp_path / "one.yaml", _config(tiny_sam, tmp_path / "one", "none"))
    ref_out = str(tmp_path / "one.npz")
    result = subprocess.run(
        [sys.executable, CHECK, ref_config, ref_out],
        cwd=str(tmp_path),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    def load(path):
        data = np.load(path)
        return json.loads(str(data["meta"])), {k: data[k] for k in data.files if k != "meta"}

    return {
        "tmp": tmp_path,
        "workers": [load(p) for p in outs],
        "one": load(ref_out),
        "logs": logs,
        "seconds": seconds,
    }


#: Update agreement, as a fraction of the network's step size (its largest single-weight
#: update). It absorbs float32 summation-order noise: each worker sums half the batch and
#: the ring all-reduce adds the halves, against one sum over the batch. Measured after the
#: 4 steps: 1.1e-5 (G) and 2.4e-6 (D) of the step size; a lost or unaveraged gradient is
#: of the size of the updates themselves (the negative control below).
UPDATE_RTOL = 1e-3


def _update_mismatches(start, end_ref, end_test, part):
    keys = [k for k in start if k.startswith(part + "/")]
    ref = {k: end_ref[k] - start[k] for k in keys}
    test = {k: end_test[k] - start[k] for k in keys}
    step = max(float(np.abs(u).max()) for u in ref.values())
    assert step > 1e-4, f"{part}: training did not move it"
    return [k for k in keys if np.abs(test[k] - ref[k]).max() > UPDATE_RTOL * step], ref


@pytest.mark.slow
def test_two_workers_train_like_one_process_on_the_same_global_batches(two_workers):
    (chief_meta, chief), (other_meta, other) = two_workers["workers"]
    one_meta, one = two_workers["one"]
    assert chief_meta["chief"] and not other_meta["chief"]
    assert chief_meta["replicas"] == other_meta["replicas"] == 2
    assert one_meta["replicas"] == 1
    assert chief_meta["g_steps"] == other_meta["g_steps"] == one_meta["g_steps"] == EPOCHS * STEPS
    start = {k[6:]: v for k, v in one.items() if k.startswith("start/")}
    for key, value in start.items():
        # Same seed, and the strategy broadcasts worker 0's initial values: equal bits.
        np.testing.assert_array_equal(chief["start/" + key], value, err_msg=key)
        np.testing.assert_array_equal(other["start/" + key], value, err_msg=key)
    for key in (k for k in chief if k.startswith("end/")):
        # Both workers apply the same all-reduced gradients: equal bits.
        np.testing.assert_array_equal(other[key], chief[key], err_msg=key)
    end_one = {k[4:]: v for k, v in one.items() if k.startswith("end/")}
    end_chief = {k[4:]: v for k, v in chief.items() if k.startswith("end/")}
    for part in ("generator", "discriminator"):
        bad, ref_updates = _update_mismatches(start, end_one, end_chief, part)
        assert not bad, f"{part}: {bad}"
        # Negative control: half of every update (one worker's gradient left out of the
        # all-reduce) is flagged in most variables.
        halved = {k: start[k] + 0.5 * u for k, u in ref_updates.items()}
        assert len(_update_mismatches(start, end_one, halved, part)[0]) > len(ref_updates) // 2
    for opt in ("g_optimizer", "d_optimizer"):
        for key in (k for k in end_one if k.startswith(opt + "/")):
            # SGD's state: the step counter and the learning rate, exact.
            np.testing.assert_array_equal(end_chief[key], end_one[key], err_msg=key)
    assert set(chief_meta["history"]) == set(one_meta["history"])
    assert "val_g_loss" in one_meta["history"]
    for key, values in one_meta["history"].items():
        # Epoch means of losses of size 1e-3..10 (training and validation): the same
        # float32 summation-order noise, carried through 4 steps (measured 2e-6 relative).
        np.testing.assert_allclose(
            chief_meta["history"][key], values, rtol=1e-4, atol=1e-7, err_msg=key
        )


@pytest.mark.slow
def test_only_the_chief_writes(two_workers):
    tmp = two_workers["tmp"]
    (chief_meta, _), (other_meta, _) = two_workers["workers"]
    files = _files(str(tmp / "run"))
    # Exactly what one process writes into its run folder, nothing of the other worker's.
    assert files == _files(str(tmp / "one"))
    assert {
        "config.yaml",
        "history.json",
        "generator.keras",
        "sagim.keras",
        "checkpoints/state.json",
        "checkpoints/epoch-0001.weights.h5",
        "checkpoints/epoch-0002.weights.h5",
        "samples/step-000002.png",
        "samples/step-000004.png",
        "logs/train/events.out.tfevents.*",
        "logs/validation/events.out.tfevents.*",
    } <= files
    assert not [f for f in files if "worker" in f]
    assert sorted(chief_meta["outputs"]) == ["generator", "model"]
    assert other_meta["outputs"] == {}
    # The other worker wrote nothing in its working folder or its temporary folder.
    home = tmp / "train-worker1"
    assert _files(str(home)) == set(), _files(str(home))
    with open(tmp / "run" / "history.json", encoding="utf-8") as f:
        assert len(f.readlines()) == 1  # one writer, one run


# ---------------------------------------------------------------------- a worker dies
@pytest.mark.slow
def test_a_killed_worker_ends_the_chief_with_a_message_and_the_same_command_resumes(
    tiny_sam, tmp_path
):
    epochs = 6
    ports = free_loopback_ports(2)
    run_dir = tmp_path / "run"
    config = write_config(
        tmp_path / "multi.yaml",
        _config(tiny_sam, run_dir, "multi_worker", epochs=epochs, image_every_steps=0),
    )

    def command(index):
        return ["-m", "sagim_tf", "train", "--config", config]

    state_path = run_dir / "checkpoints" / STATE_FILE
    procs = _start_workers(command, ports, tmp_path, "first")
    try:
        wait_for_first_checkpoint(procs, state_path.parent, timeout=300)
        assert all(p.poll() is None for p in procs), _log(tmp_path, "first", 0)
        procs[1].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        code = procs[0].wait(timeout=LOST_PEER_SECONDS)
        waited = time.monotonic() - killed_at
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    out = _log(tmp_path, "first", 0)
    assert code == 2, out
    assert "Traceback" not in out, out
    assert f"lost worker 1 (127.0.0.1:{ports[1]})" in out, out
    assert "Start every worker again with the same command to resume" in out, out
    stopped = json.loads(state_path.read_text())["epoch"]
    assert 1 <= stopped < epochs
    print(f"chief ended {waited:.1f} s after the kill, after epoch {stopped}")

    # The same command on both workers resumes from the chief's checkpoint.
    procs = _start_workers(command, ports, tmp_path, "again")
    codes = _wait_all(procs, timeout=400)
    logs = [_log(tmp_path, "again", i) for i in range(2)]
    assert codes == [0, 0], "\n----\n".join(logs)
    for log in logs:
        assert f"Resuming from {run_dir / 'checkpoints'}" in log, log
        assert f"{stopped} epoch(s) done, G step {stopped * STEPS}" in log, log
        assert f"G steps:         {epochs * STEPS}" in log, log
    state = json.loads(state_path.read_text())
    assert state["epoch"] == epochs and state["g_iterations"] == epochs * STEPS


@pytest.mark.slow
def test_sigterm_to_one_worker_stops_every_worker_after_the_same_step(tiny_sam, tmp_path):
    epochs = 40  # far more than the test waits for: only SIGTERM ends it
    ports = free_loopback_ports(2)
    run_dir = tmp_path / "run"
    config = write_config(
        tmp_path / "multi.yaml",
        _config(tiny_sam, run_dir, "multi_worker", epochs=epochs, image_every_steps=0),
    )
    state_path = run_dir / "checkpoints" / STATE_FILE
    command = ["-m", "sagim_tf", "train", "--config", config]
    procs = _start_workers(lambda i: command, ports, tmp_path, "term")
    try:
        wait_for_first_checkpoint(procs, state_path.parent, timeout=300)
        assert all(p.poll() is None for p in procs), _log(tmp_path, "term", 0)
        procs[1].send_signal(signal.SIGTERM)  # the non-chief only
        codes = [p.wait(timeout=LOST_PEER_SECONDS) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    logs = [_log(tmp_path, "term", i) for i in range(2)]
    assert codes == [143, 143], "\n----\n".join(logs)
    steps = [re.search(r"stopped by SIGTERM after G step (\d+)", log) for log in logs]
    assert all(steps), "\n----\n".join(logs)
    assert steps[0].group(1) == steps[1].group(1)  # the same step on both
    assert "a peer got SIGTERM" in logs[0]
    state = json.loads(state_path.read_text())
    assert state["g_iterations"] == int(steps[0].group(1)) < epochs * STEPS
    assert (run_dir / "sagim.keras").is_file() and (run_dir / "generator.keras").is_file()


# ---------------------------------------------------------------------- pure helpers
CLUSTER = {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}


def _tf_config(kind, index, cluster=None):
    return json.dumps({"cluster": cluster or CLUSTER, "task": {"type": kind, "index": index}})


def test_the_chief_is_the_chief_task_or_else_worker_0():
    assert is_chief(_tf_config("worker", 0))
    assert not is_chief(_tf_config("worker", 1))
    with_chief = {"chief": ["10.0.0.9:2222"], **CLUSTER}
    assert is_chief(_tf_config("chief", 0, with_chief))
    assert not is_chief(_tf_config("worker", 0, with_chief))
    assert is_chief("")  # no TF_CONFIG: a single process
    with pytest.raises(ConfigError, match="TF_CONFIG is not valid JSON"):
        is_chief("{cluster")


HEARTBEAT_ERROR = (
    "{{function_node __wrapped__CollectiveReduceV2_device_/job:worker/replica:0/task:0/"
    "device:CPU:0}} Collective ops is aborted by: Error reported from /job:worker/task:1: "
    "The following tasks are unhealthy (stopped sending heartbeats):\n"
    "/job:worker/replica:0/task:1\nThe tasks have crashed."
)


def test_lost_peer_names_the_other_task_and_its_address():
    assert lost_peer(HEARTBEAT_ERROR, _tf_config("worker", 0)) == "worker 1 (10.0.0.2:2222)"
    text = "tasks unhealthy: /job:worker/replica:0/task:0"
    assert lost_peer(text, _tf_config("worker", 1)) == "worker 0 (10.0.0.1:2222)"
    assert lost_peer("connection reset", _tf_config("worker", 0)) == "a peer"
    assert lost_peer(text, _tf_config("worker", 0)) == "a peer"  # itself is no peer
    three = {"worker": ["a:1", "b:1", "c:1"]}
    both = "/job:worker/replica:0/task:1 /job:worker/replica:0/task:2 /job:worker/replica:0/task:1"
    assert lost_peer(both, _tf_config("worker", 0, three)) == "worker 1 (b:1) and worker 2 (c:1)"
    assert lost_peer("/job:worker/replica:0/task:7", _tf_config("worker", 0)) == "worker 7"


GRAPH_ERROR = (
    "Graph execution error:\n\nDetected at node CollectiveReduceV2 defined at (most recent "
    'call last):\n  File "train.py", line 1, in <module>\n    main()\n\n'
    "Collective ops is aborted by: recvmsg:Connection reset by peer\n"
    "Additional GRPC error information from remote target /job:worker/replica:0/task:0 "
    "while calling /tensorflow.WorkerService/CompleteInstance:\n"
    ':UNKNOWN:Error received from peer  {grpc_status:14, grpc_message:"recvmsg"}\n'
    "\t [[{{node CollectiveReduceV2}}]] [Op:__inference_total_12]"
)


def test_error_reason_is_the_line_that_says_what_went_wrong():
    assert (
        error_reason(GRAPH_ERROR)
        == "Collective ops is aborted by: recvmsg:Connection reset by peer"
    )
    assert error_reason(HEARTBEAT_ERROR).startswith("Collective ops is aborted by: Error reported")
    assert error_reason("Graph execution error:") == "Graph execution error:"  # nothing better
    assert error_reason("") == ""
    assert lost_peer(GRAPH_ERROR, _tf_config("worker", 1)) == "worker 0 (10.0.0.1:2222)"


def test_worker_lost_message_says_what_stopped_and_how_to_resume(tmp_path):
    error = tf.errors.UnavailableError(None, None, HEARTBEAT_ERROR)
    message = worker_lost_message(error, _tf_config("worker", 0), 7, str(tmp_path))
    assert message.startswith("multi-worker training lost worker 1 (10.0.0.2:2222) after G step 7")
    assert "(UnavailableError: Collective ops is aborted by" in message
    assert "{{" not in message
    assert "no epoch has been checkpointed yet" in message
    assert message.endswith("Start every worker again with the same command to resume.")
    (tmp_path / "epoch-0003.weights.h5").write_bytes(b"")
    (tmp_path / STATE_FILE).write_text(json.dumps({"epoch": 3, "weights": "epoch-0003.weights.h5"}))
    message = worker_lost_message(error, _tf_config("worker", 0), 7, str(tmp_path))
    assert f"the last checkpoint is epoch 3 in {str(tmp_path)!r}" in message


class _SummingStrategy:
    """Stands in for a strategy's all-reduce: the workers' values are given."""

    def __init__(self, epochs):
        self.epochs = epochs
        self.num_replicas_in_sync = len(epochs)

    def run(self, fn):
        return fn()

    def reduce(self, op, value, axis=None):
        assert op == "SUM"
        e = np.asarray(self.epochs, np.float32)
        return tf.constant([e.sum(), (e * e).sum(), float(len(e))])


def test_every_worker_must_resume_from_the_same_epoch():
    check_same_start(_SummingStrategy([3, 3]), 3, "/shared/run/checkpoints")
    check_same_start(_SummingStrategy([0, 0, 0]), 0, "x")
    check_same_start(tf.distribute.get_strategy(), 5, "x")  # one replica: nothing to agree
    with pytest.raises(ConfigError, match="resume from different epochs.*shared file system"):
        check_same_start(_SummingStrategy([3, 0]), 0, "/local/run/checkpoints")
    with pytest.raises(ConfigError, match="different epochs"):
        check_same_start(_SummingStrategy([0, 1, 2]), 1, "x")  # sum = 3 x 1, squares do not


def test_multi_worker_input_is_sharded_by_data(tiny_sam, tmp_path):
    data_dir, spec = tiny_sam
    auto = tf.data.experimental.AutoShardPolicy
    for distribution, policy in (("multi_worker", auto.DATA), ("none", auto.AUTO)):
        cfg = config_from_dict(
            tiny_config(data_dir, spec, tmp_path, train={"distribution": distribution})
        )
        for dataset in make_datasets(cfg):
            assert dataset.options().experimental_distribute.auto_shard_policy == policy


def test_multi_worker_validates_on_whole_global_batches(tiny_sam, tmp_path):
    """The 4 test records in batches of 3: one process validates on 2 batches (3 + 1); the
    workers on the whole one only, since a batch of 1 would leave a replica none."""
    data_dir, spec = tiny_sam
    for distribution, batches in (("none", 2), ("multi_worker", 1)):
        cfg = config_from_dict(
            tiny_config(
                data_dir, spec, tmp_path, train={"distribution": distribution, "batch_size": 3}
            )
        )
        assert int(make_datasets(cfg)[1].cardinality()) == batches, distribution
    cfg = config_from_dict(
        tiny_config(
            data_dir, spec, tmp_path, train={"distribution": "multi_worker", "batch_size": 6}
        )
    )
    with pytest.raises(ConfigError, match="has 4 record.*fewer than train.batch_size 6"):
        make_datasets(cfg)


class _OtherWorkers:
    """Stands in for a strategy's all-reduce: adds the other workers' given flags."""

    def __init__(self, *others):
        self.others = np.asarray(others, np.float32).reshape(-1, 2)

    def run(self, fn):
        return fn()

    def reduce(self, op, value, axis=None):
        assert op == "SUM"
        return value + self.others.sum(axis=0)


class _Model:
    def __init__(self):
        self.stop_training = False
        self.g_optimizer = type("Opt", (), {"iterations": np.int64(12)})()


def _sync(*others, stop=False, signalled=False):
    model, preemption = _Model(), Preemption()
    model.stop_training, preemption.signalled = stop, signalled
    callback = SyncStop(_OtherWorkers(*others), preemption)
    callback.set_model(model)
    callback.on_train_batch_end(0)
    return model.stop_training, preemption.signalled


def test_one_worker_stopping_stops_all_and_a_peer_sigterm_counts_as_ones_own():
    assert _sync([0, 0]) == (False, False)  # nobody stops
    assert _sync([1, 0]) == (True, False)  # a peer's time budget or NaN guard
    assert _sync([0, 0], stop=True) == (True, False)  # this worker's own
    assert _sync([1, 1], [0, 0]) == (True, True)  # a peer got SIGTERM
    assert _sync([0, 0], stop=True, signalled=True) == (True, True)
