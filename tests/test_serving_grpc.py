"""gRPC serving: our PredictionService server and the client, on 127.0.0.1 with a free port."""

import ast
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2

from sagim_tf.cli import build_parser
from sagim_tf.cli import serve as serve_cli
from sagim_tf.export import export_savedmodel
from sagim_tf.serving import (
    SagimServer,
    SagimServingClient,
    ServingBusyError,
    ServingError,
    ServingInvalidArgumentError,
    ServingNotFoundError,
    ServingTimeoutError,
    ServingUnavailableError,
)
from sagim_tf.serving import server as server_module
from sagim_tf.serving.options import (
    DEFAULT_HOST,
    DEFAULT_LARGE_PIXELS,
    DEFAULT_MAX_PIXELS,
    is_loopback,
)
from sagim_tf.serving.server import ModelManager
from sagim_tf.serving.tensors import from_tensor_proto, to_tensor_proto
from sagim_tf.utils.errors import ConfigError, InputError
from sagim_tf.utils.io import to_uint8
from tests.export_helpers import (
    batch,
    free_port,
    masks,
    readme_python,
    self_signed_pair,
    shared_operator_savedmodel,
    shared_savedmodel,
    tiny_generator,
)

MAX_PIXELS = 20_000
MAX_REQUEST_MB = 1
# The served SavedModel against eager Keras G: the same float32 ops, traced and reordered.
KERAS_TOL = 1e-5


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    g, path, loaded = shared_savedmodel(tmp_path_factory)
    server = SagimServer(
        os.path.dirname(path),
        port=free_port(),
        host="127.0.0.1",
        max_workers=8,
        max_concurrent=2,
        max_pixels=MAX_PIXELS,
        max_request_mb=MAX_REQUEST_MB,
        poll_interval=0.5,
    )
    server.start()
    client = SagimServingClient("127.0.0.1", server.port, timeout=60)
    client.wait_ready(20)
    yield g, loaded, server, client
    client.close()
    server.stop(grace=1)


@pytest.fixture(scope="module")
def served_full(tmp_path_factory):
    """A server on an export with every signature (operator-head G, tiny E)."""
    g, e, path, loaded = shared_operator_savedmodel(tmp_path_factory)
    server = SagimServer(
        os.path.dirname(path),
        port=free_port(),
        host="127.0.0.1",
        max_pixels=MAX_PIXELS,
        max_request_mb=MAX_REQUEST_MB,
        poll_interval=0,
    )
    server.start()
    client = SagimServingClient("127.0.0.1", server.port, timeout=60)
    client.wait_ready(20)
    yield g, loaded, server, client
    client.close()
    server.stop(grace=1)


def _good_request(signature="serving_default", shape=(1, 8, 8)):
    image, guidance = batch(*shape)
    if signature == "edit_uint8":
        image = to_uint8(image)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "sagim"
    request.model_spec.signature_name = signature
    request.inputs["image"].CopyFrom(to_tensor_proto(image))
    request.inputs["guidance"].CopyFrom(to_tensor_proto(guidance))
    return request


@pytest.mark.parametrize("shape", [(1, 16, 16), (2, 13, 17), (3, 7, 30)])
def test_pixels_equal_in_process(served, shape):
    g, loaded, _, client = served
    image, guidance = batch(*shape, seed=sum(shape))
    edited = client.edit(image, guidance)
    local = loaded.signatures["serving_default"](image=image, guidance=guidance)["edited"].numpy()
    assert edited.dtype == np.float32 and edited.shape == image.shape
    np.testing.assert_array_equal(edited, local)
    assert np.abs(edited - np.asarray(g([image, guidance]))).max() <= KERAS_TOL


def test_single_image_and_uint8_signature(served):
    _, loaded, _, client = served
    image, guidance = batch(1, 12, 20, seed=4)
    single = client.edit(image[0], guidance[0, ..., 0])
    assert single.shape == image.shape[1:]
    edited8 = client.edit(image, guidance, signature="edit_uint8")
    local = loaded.signatures["edit_uint8"](image=to_uint8(image), guidance=guidance)[
        "edited"
    ].numpy()
    assert edited8.dtype == np.uint8
    np.testing.assert_array_equal(edited8, local)


def test_metadata(served):
    _, _, server, client = served
    meta = client.metadata()
    assert meta["name"] == "sagim" and meta["version"] == server.version == 1
    assert set(meta["signatures"]) == {"serving_default", "edit_uint8"}
    sig = meta["signatures"]["edit_uint8"]
    assert sig["inputs"] == {
        "image": ("uint8", (-1, -1, -1, 3)),
        "guidance": ("float32", (-1, -1, -1, 1)),
    }
    assert sig["outputs"] == {"edited": ("uint8", (-1, -1, -1, 3))}


def _set(request, key, array):
    request.inputs[key].CopyFrom(to_tensor_proto(array))


def _mutate(case, request):
    image = from_tensor_proto(request.inputs["image"])
    guidance = from_tensor_proto(request.inputs["guidance"])
    if case == "float64_image":
        proto = request.inputs["image"]
        proto.dtype = types_pb2.DT_DOUBLE
        proto.tensor_content = image.astype(np.float64).tobytes()
    elif case == "int32_guidance":
        proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32)
        proto.tensor_shape.CopyFrom(request.inputs["guidance"].tensor_shape)
        proto.int_val.extend([0] * guidance.size)
        request.inputs["guidance"].CopyFrom(proto)
    elif case == "uint8_on_float_signature":
        _set(request, "image", to_uint8(image))
    elif case == "float_on_uint8_signature":
        request.model_spec.signature_name = "edit_uint8"
    elif case == "rank3":
        _set(request, "image", image[0])
    elif case == "four_channels":
        _set(request, "image", np.concatenate([image, guidance], -1))
    elif case == "size_mismatch":
        _set(request, "guidance", guidance[:, :5])
    elif case == "missing_input":
        del request.inputs["guidance"]
    elif case == "extra_input":
        _set(request, "mask", guidance)
    elif case == "truncated_content":
        proto = request.inputs["image"]
        proto.tensor_content = proto.tensor_content[:-4]
    elif case == "value_count":
        proto = request.inputs["guidance"]
        proto.tensor_content = b""
        proto.float_val.extend([0.5, 0.5, 0.5])
    elif case == "broadcast_float_val":  # TF would fill the tensor with the one value
        proto = request.inputs["guidance"]
        proto.tensor_content = b""
        proto.float_val.append(0.5)
    elif case == "broadcast_int_val":
        request.model_spec.signature_name = "edit_uint8"
        proto = request.inputs["image"]
        proto.dtype = types_pb2.DT_UINT8
        proto.tensor_content = b""
        proto.int_val.append(7)
    elif case == "overflowing_dims":  # 3 * 6148914691236517206 wraps to 2 in int64
        dims = request.inputs["image"].tensor_shape.dim
        dims[0].size, dims[1].size, dims[2].size = 3, 6148914691236517206, 1
    elif case == "negative_dim":
        request.inputs["image"].tensor_shape.dim[1].size = -1
    elif case == "out_of_range":
        _set(request, "image", image * 2)
    elif case == "nan":
        image = image.copy()
        image[0, 1, 1, 1] = np.nan
        _set(request, "image", image)
    elif case == "negative_guidance":
        _set(request, "guidance", guidance - 0.5)
    elif case == "empty":
        _set(request, "image", image[:, :0])
        _set(request, "guidance", guidance[:, :0])
    elif case == "unknown_signature":
        request.model_spec.signature_name = "predict"
    elif case == "output_filter":
        request.output_filter.append("saliency")
    elif case == "too_many_pixels":  # 1 x 150 x 150 = 22,500 > 20,000
        big_image, big_guidance = batch(1, 150, 150)
        _set(request, "image", big_image)
        _set(request, "guidance", big_guidance)
    elif case == "too_many_bytes":  # ~1.1 MB > 1 MB, under gRPC's own 2 MB limit
        _set(request, "image", np.zeros((1, 300, 300, 3), np.float32))
    else:  # pragma: no cover
        raise AssertionError(case)
    return request


BAD_CASES = [
    "float64_image",
    "int32_guidance",
    "uint8_on_float_signature",
    "float_on_uint8_signature",
    "rank3",
    "four_channels",
    "size_mismatch",
    "missing_input",
    "extra_input",
    "truncated_content",
    "value_count",
    "broadcast_float_val",
    "broadcast_int_val",
    "overflowing_dims",
    "negative_dim",
    "out_of_range",
    "nan",
    "negative_guidance",
    "empty",
    "unknown_signature",
    "output_filter",
    "too_many_pixels",
    "too_many_bytes",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_requests_get_invalid_argument_and_serving_goes_on(served, case):
    _, _, _, client = served
    request = _mutate(case, _good_request())
    with pytest.raises(grpc.RpcError) as info:
        client.stub.Predict(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert info.value.details()
    response = client.stub.Predict(_good_request(), timeout=30)
    assert response.outputs["edited"].tensor_shape.dim[1].size == 8


def test_client_maps_invalid_argument(served):
    _, _, _, client = served
    image, guidance = batch(1, 8, 8)
    with pytest.raises(ServingInvalidArgumentError, match="lie in") as info:
        client.edit(image * 3, guidance)
    assert isinstance(info.value, InputError)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_message_over_grpc_limit_is_refused_and_serving_goes_on(served):
    _, _, _, client = served
    image = np.zeros((1, 500, 500, 3), np.float32)  # 3 MB > 2 x 1 MB
    with pytest.raises(ServingError) as info:
        client.edit(image, np.zeros((1, 500, 500, 1), np.float32))
    assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert client.edit(*batch(1, 8, 8)).shape == (1, 8, 8, 3)


def test_unknown_model_or_version_is_not_found(served):
    _, _, server, _ = served
    with SagimServingClient("127.0.0.1", server.port, model_name="other") as other:
        with pytest.raises(ServingNotFoundError):
            other.edit(*batch(1, 8, 8))
        with pytest.raises(ServingNotFoundError):
            other.metadata()
    with SagimServingClient("127.0.0.1", server.port, version=7) as old:
        with pytest.raises(ServingNotFoundError, match="version 7"):
            old.edit(*batch(1, 8, 8))


def test_32_concurrent_requests(served):
    _, loaded, _, client = served
    inputs = [batch(1, 12 + i % 5, 16 + i % 3, seed=i) for i in range(32)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(lambda pair: client.edit(*pair), inputs))
    for (image, guidance), edited in zip(inputs, results):
        local = loaded.signatures["serving_default"](image=image, guidance=guidance)[
            "edited"
        ].numpy()
        np.testing.assert_array_equal(edited, local)


def test_timeout_and_unavailable_errors(served):
    _, _, server, _ = served
    with SagimServingClient("127.0.0.1", server.port, timeout=1e-4) as hasty:
        with pytest.raises(ServingTimeoutError):
            hasty.edit(*batch(1, 64, 64))
    with SagimServingClient("127.0.0.1", free_port(), timeout=5) as nobody:
        with pytest.raises(ServingUnavailableError, match="unavailable"):
            nobody.edit(*batch(1, 8, 8))
        with pytest.raises(ServingUnavailableError):
            nobody.wait_ready(0.5)


def test_server_needs_a_version(tmp_path):
    with pytest.raises(InputError, match="not found"):
        SagimServer(tmp_path / "missing")
    (tmp_path / "sagim" / "1").mkdir(parents=True)
    with pytest.raises(InputError, match="no loadable version"):
        SagimServer(tmp_path / "sagim")


def test_version_hot_swap_and_graceful_stop(tmp_path_factory, tmp_path):
    _, path, _ = shared_savedmodel(tmp_path_factory)
    base = tmp_path / "sagim"
    shutil.copytree(path, base / "1")
    (base / "broken-not-a-version").mkdir()
    server = SagimServer(base, port=free_port(), host="127.0.0.1", poll_interval=0.2)
    server.start()
    try:
        with SagimServingClient("127.0.0.1", server.port, timeout=60) as client:
            image, guidance = batch(2, 12, 16, seed=9)
            before = client.edit(image, guidance)
            assert client.metadata()["version"] == 1
            g2 = tiny_generator(seed=1)
            export_savedmodel(g2, tmp_path, name="sagim")  # writes version 2 atomically
            deadline = time.time() + 60
            while client.metadata()["version"] != 2:
                assert time.time() < deadline, "version 2 was not picked up"
                time.sleep(0.2)
            after = client.edit(image, guidance)
            assert np.abs(after - np.asarray(g2([image, guidance]))).max() <= KERAS_TOL
            assert np.abs(after - before).max() > 1e-3  # another G, not the old one
            with pytest.raises(ServingNotFoundError):
                SagimServingClient("127.0.0.1", server.port, version=1).edit(image, guidance)
    finally:
        server.stop(grace=2)
    assert server.wait(0)
    with SagimServingClient("127.0.0.1", server.port, timeout=5) as late:
        with pytest.raises(ServingUnavailableError):
            late.edit(*batch(1, 8, 8))


def _start_process(cmd, ready_text, timeout=120):
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    lines = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        lines.append(line)
        if ready_text in line:
            return proc, lines
    proc.kill()
    proc.wait()
    raise AssertionError("server did not start:\n" + "".join(lines[-30:]))


def test_sagim_serve_cli_serves_and_stops_on_sigterm(tmp_path_factory, tmp_path):
    g, path, _ = shared_savedmodel(tmp_path_factory)
    base = tmp_path / "sagim"
    shutil.copytree(path, base / "3")
    port = free_port()
    proc, lines = _start_process(
        [
            sys.executable,
            "-m",
            "sagim_tf",
            "serve",
            "--model-base-path",
            str(base),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--grace",
            "2",
        ],
        "listening on",
    )
    try:
        assert "version 3" in lines[-1]
        with SagimServingClient("127.0.0.1", port, timeout=60) as client:
            image, guidance = batch(2, 10, 14, seed=2)
            edited = client.edit(image, guidance)
            assert np.abs(edited - np.asarray(g([image, guidance]))).max() <= KERAS_TOL
            with pytest.raises(ServingInvalidArgumentError):
                client.edit(image, guidance[:, :5])
            assert client.edit(image, guidance).shape == image.shape
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "stopped" in out


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the test certificate")
def test_tls_with_a_self_signed_certificate(served, tmp_path):
    _, loaded, server, _ = served
    cert, key = self_signed_pair(tmp_path)
    other_cert, _ = self_signed_pair(tmp_path, "other")
    with SagimServer(
        server.manager.base_path, port=0, poll_interval=0, ssl_cert=cert, ssl_key=key
    ) as tls:
        assert tls.tls
        image, guidance = batch(1, 9, 11, seed=3)
        with SagimServingClient("127.0.0.1", tls.port, timeout=30, ssl_root_cert=cert) as client:
            edited = client.edit(image, guidance)
        local = loaded.signatures["serving_default"](image=image, guidance=guidance)["edited"]
        np.testing.assert_array_equal(edited, local.numpy())
        with open(cert, "rb") as f:  # bytes work too, and a name other than the address
            pem = f.read()
        with SagimServingClient(
            "127.0.0.1", tls.port, timeout=30, ssl_root_cert=pem, ssl_target_name="localhost"
        ) as client:
            assert client.metadata()["version"] == 1
        for stranger in (
            SagimServingClient("127.0.0.1", tls.port, timeout=5),  # plaintext
            SagimServingClient("127.0.0.1", tls.port, timeout=5, ssl_root_cert=other_cert),
        ):
            with stranger, pytest.raises(ServingUnavailableError):
                stranger.edit(image, guidance)


def test_tls_configuration_errors_are_messages(served, tmp_path):
    _, _, server, _ = served
    base = server.manager.base_path
    (tmp_path / "junk.pem").write_text("not a certificate")
    for kwargs, message in [
        ({"ssl_cert": tmp_path / "junk.pem"}, "needs both --ssl-cert and --ssl-key"),
        ({"ssl_key": tmp_path / "junk.pem"}, "needs both"),
        ({"ssl_cert": tmp_path / "missing.pem", "ssl_key": tmp_path / "junk.pem"}, "cannot read"),
        ({"ssl_cert": tmp_path / "junk.pem", "ssl_key": tmp_path / "junk.pem"}, "not a PEM"),
    ]:
        with pytest.raises(ConfigError, match=message):
            SagimServer(base, port=0, poll_interval=0, **kwargs)
    with pytest.raises(ConfigError, match="ssl_root_cert .*missing.pem: cannot read"):
        SagimServingClient("127.0.0.1", server.port, ssl_root_cert=tmp_path / "missing.pem")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the test certificate")
def test_sagim_serve_cli_tls_on_all_interfaces_warns_and_a_busy_port_is_an_error(
    tmp_path_factory, tmp_path
):
    _, path, _ = shared_savedmodel(tmp_path_factory)
    base = tmp_path / "sagim"
    shutil.copytree(path, base / "1")
    cert, key = self_signed_pair(tmp_path)
    port = free_port()
    argv = [sys.executable, "-m", "sagim_tf", "serve", "--model-base-path", str(base)]
    argv += ["--port", str(port), "--grace", "1"]
    proc, lines = _start_process(
        argv + ["--host", "0.0.0.0", "--ssl-cert", cert, "--ssl-key", key], "(signatures:"
    )
    try:
        text = "".join(lines)
        assert "warning: listening on 0.0.0.0, not only on this machine, with TLS" in text
        assert f"listening on 0.0.0.0:{port}, TLS" in lines[-1]
        with SagimServingClient("127.0.0.1", port, timeout=30, ssl_root_cert=cert) as client:
            assert client.edit(*batch(1, 8, 8)).shape == (1, 8, 8, 3)
        second = subprocess.run(
            argv + ["--host", "127.0.0.1"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"sagim serve: error: cannot listen on 127.0.0.1:{port}: the port is in use" in (
            second.stderr
        )
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


@pytest.mark.skipif(
    shutil.which("tensorflow_model_server") is None, reason="tensorflow_model_server is not on PATH"
)
def test_against_real_tensorflow_model_server(tmp_path_factory, tmp_path):
    g, path, loaded = shared_savedmodel(tmp_path_factory)
    base = tmp_path / "sagim"
    shutil.copytree(path, base / "1")
    port = free_port()
    proc = subprocess.Popen(
        [
            "tensorflow_model_server",
            f"--port={port}",
            "--model_name=sagim",
            f"--model_base_path={base}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with SagimServingClient("127.0.0.1", port, timeout=60) as client:
            deadline = time.time() + 120
            while True:
                try:
                    meta = client.metadata()
                    break
                except (ServingUnavailableError, ServingNotFoundError):
                    assert time.time() < deadline, "tensorflow_model_server did not come up"
                    time.sleep(0.5)
            assert {"serving_default", "edit_uint8"} <= set(meta["signatures"])
            image, guidance = batch(2, 13, 17)
            edited = client.edit(image, guidance)
            local = loaded.signatures["serving_default"](image=image, guidance=guidance)[
                "edited"
            ].numpy()
            # 1e-5: TF Serving's C++ runtime may pick other float32 kernels than Python TF.
            assert np.abs(edited - local).max() <= 1e-5
            with pytest.raises(ServingInvalidArgumentError):
                client.edit(image * 3, guidance)
            assert client.edit(image, guidance, signature="edit_uint8").dtype == np.uint8
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_broken_new_version_keeps_the_old_one(tmp_path_factory, tmp_path):
    _, path, _ = shared_savedmodel(tmp_path_factory)
    base = tmp_path / "sagim"
    shutil.copytree(path, base / "1")
    manager = ModelManager(base, poll_interval=0)
    (base / "2").mkdir()
    (base / "2" / "saved_model.pb").write_bytes(b"garbage")
    assert manager.refresh() is False and manager.model.version == 1
    assert manager.refresh() is False  # not retried until the file changes
    shutil.rmtree(base / "2")
    shutil.copytree(path, base / "2")
    assert manager.refresh() is True and manager.model.version == 2


def test_a_version_copied_in_non_atomically_is_loaded_once_complete(tmp_path_factory, tmp_path):
    # `cp -a`/`rsync -a` keep mtimes: saved_model.pb arrives first with its old mtime, then
    # variables/; the failed first load must not stick to that unchanged saved_model.pb
    _, path, _ = shared_savedmodel(tmp_path_factory)
    base = tmp_path / "sagim"
    shutil.copytree(path, base / "1")
    manager = ModelManager(base, poll_interval=0)
    (base / "2").mkdir()
    shutil.copy2(os.path.join(path, "saved_model.pb"), base / "2" / "saved_model.pb")
    assert manager.refresh() is False and manager.model.version == 1  # no variables yet
    assert manager.refresh() is False  # nothing changed: not retried
    variables = base / "2" / "variables"
    variables.mkdir()
    index = os.path.join(path, "variables", "variables.index")
    shutil.copy2(index, variables / "variables.index")
    assert manager.refresh() is False and manager.model.version == 1  # data still missing
    shutil.copytree(path, base / "2", dirs_exist_ok=True, copy_function=shutil.copy2)
    assert manager.refresh() is True and manager.model.version == 2


def test_a_second_server_on_a_busy_port_is_refused(served):
    # gRPC's default SO_REUSEPORT let it start and split the requests between the two
    _, _, server, _ = served
    second = SagimServer(server.manager.base_path, port=server.port, poll_interval=0)
    try:
        with pytest.raises(ConfigError, match=f"127.0.0.1:{server.port}: the port is in use"):
            second.start()
    finally:
        second.stop(grace=0)
    other = SagimServer(server.manager.base_path, port=server.port, host="0.0.0.0")
    try:
        with pytest.raises(ConfigError, match="in use"):
            other.start()
    finally:
        other.stop(grace=0)


def test_defaults_bind_loopback_and_other_hosts_are_warned_about(served):
    _, _, server, _ = served
    defaults = SagimServer(server.manager.base_path, port=0, poll_interval=0)
    assert defaults.host == "127.0.0.1" and defaults.exposure_warning == ""
    assert defaults.servicer.max_pixels == DEFAULT_MAX_PIXELS
    args = build_parser("serve").parse_args(["serve", "--model-base-path", "x"])
    assert args.host == "127.0.0.1" and args.max_pixels == DEFAULT_MAX_PIXELS
    assert (serve_cli.DEFAULT_HOST, serve_cli.DEFAULT_LARGE_PIXELS) == (
        DEFAULT_HOST,
        DEFAULT_LARGE_PIXELS,
    )
    exposed = SagimServer(server.manager.base_path, port=0, host="0.0.0.0", poll_interval=0)
    assert "without TLS" in exposed.exposure_warning
    for host, loopback in [("localhost", True), ("::1", True), ("127.0.0.2", True)]:
        assert is_loopback(host) is loopback
    for host in ("0.0.0.0", "::", "10.1.2.3", "example.org"):
        assert not is_loopback(host)


def test_a_90_byte_request_cannot_ask_for_gigabytes(served):
    # one float_val broadcast to 1x4096x4096 used to cost 10 GB: the declared shape is now
    # checked against the server's default pixel limit before anything is allocated
    _, _, server, _ = served
    with SagimServer(server.manager.base_path, port=0, poll_interval=0) as defaults:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "sagim"
        for key, channels in (("image", 3), ("guidance", 1)):
            proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
            for d in (1, 4096, 4096, channels):
                proto.tensor_shape.dim.add(size=d)
            proto.float_val.append(0.5)
            request.inputs[key].CopyFrom(proto)
        assert request.ByteSize() < 100
        with SagimServingClient("127.0.0.1", defaults.port, timeout=60) as client:
            with pytest.raises(grpc.RpcError) as info:
                client.stub.Predict(request, timeout=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"limit of {DEFAULT_MAX_PIXELS}" in info.value.details()
    assert "(1, 4096, 4096, 3)" in info.value.details()


def test_a_large_request_beyond_max_large_gets_resource_exhausted_at_once(served):
    _, _, server, _ = served
    with SagimServer(
        server.manager.base_path, port=0, poll_interval=0, large_pixels=100, max_large=1
    ) as busy:
        with SagimServingClient("127.0.0.1", busy.port, timeout=60) as client:
            assert client.edit(*batch(1, 16, 16)).shape == (1, 16, 16, 3)  # large, alone
            assert busy.servicer._large.acquire(blocking=False)  # as if one were running
            try:
                with pytest.raises(ServingBusyError, match="1 large request") as info:
                    client.edit(*batch(1, 16, 16))  # 256 > 100 pixels
                assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert client.edit(*batch(1, 8, 8)).shape == (1, 8, 8, 3)  # small: served
            finally:
                busy.servicer._large.release()
            assert client.edit(*batch(1, 16, 16)).shape == (1, 16, 16, 3)


def test_client_refuses_out_of_range_float_for_uint8(served):
    _, _, _, client = served
    image, guidance = batch(1, 8, 8)
    with pytest.raises(InputError, match="uint8"):
        client.edit(image + 1, guidance, signature="edit_uint8")


def test_server_does_not_import_the_client():
    tree = ast.parse(open(server_module.__file__, encoding="utf-8").read())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {
        a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names
    }
    assert "sagim_tf.serving.client" not in imported
    assert "sagim_tf.export.signatures" in imported  # the one signature table


def test_readme_client_example_runs(served, capsys):
    _, _, server, _ = served
    code = readme_python("gRPC client")
    assert '"localhost", 8500' in code
    scope = {}
    exec(code.replace('"localhost", 8500', f'"127.0.0.1", {server.port}'), scope)
    assert scope["edited"].shape == scope["image"].shape and scope["edited8"].dtype == np.uint8
    assert "edit_uint8" in capsys.readouterr().out


# ------------------------------------------------------------ fields and edit_masks


def test_fields_over_grpc_equal_in_process(served_full):
    _, loaded, _, client = served_full
    image, guidance = batch(2, 13, 17, seed=5)
    fields = client.fields(image, guidance)
    local = loaded.signatures["fields"](image=image, guidance=guidance)["fields"].numpy()
    assert fields.shape == (2, 13, 17, 7) and fields.dtype == np.float32
    np.testing.assert_array_equal(fields, local)
    single = client.fields(image[0], guidance[0, ..., 0])
    local_one = loaded.signatures["fields"](image=image[:1], guidance=guidance[:1])["fields"]
    np.testing.assert_array_equal(single, local_one.numpy()[0])  # batch 1: its own kernels


def test_edit_masks_over_grpc_equal_in_process(served_full):
    _, loaded, _, client = served_full
    image, _ = batch(2, 12, 20, seed=6)
    emphasize, deemphasize = masks(2, 12, 20)
    strength = np.array([1.0, 0.5], np.float32)
    edited = client.edit_masks(image, emphasize, deemphasize, strength=strength)
    local = loaded.signatures["edit_masks"](
        image=image, emphasize=emphasize, deemphasize=deemphasize, strength=strength
    )["edited"].numpy()
    assert edited.dtype == np.float32 and edited.shape == image.shape
    np.testing.assert_array_equal(edited, local)
    # one image, a boolean (H, W) mask, no de-emphasized region, one strength
    one = client.edit_masks(image[0], emphasize=emphasize[0, ..., 0] > 0.5, strength=0.5)
    no_region = np.zeros_like(deemphasize[:1])
    local_one = loaded.signatures["edit_masks"](
        image=image[:1], emphasize=emphasize[:1], deemphasize=no_region, strength=np.float32(0.5)
    )["edited"].numpy()[0]
    np.testing.assert_array_equal(one, local_one)
    # strength 0 with the operator head: the photo itself
    np.testing.assert_array_equal(client.edit_masks(image, emphasize, strength=0.0), image)


def test_metadata_lists_the_optional_signatures(served_full):
    _, _, _, client = served_full
    signatures = client.metadata()["signatures"]
    assert set(signatures) == {"serving_default", "edit_uint8", "fields", "edit_masks"}
    assert signatures["fields"]["outputs"] == {"fields": ("float32", (-1, -1, -1, 7))}
    inputs = signatures["edit_masks"]["inputs"]
    assert inputs["emphasize"] == ("float32", (-1, -1, -1, 1))
    assert inputs["strength"] == ("float32", None)  # a scalar or (B,)


def test_an_export_without_the_optional_signatures_still_serves(served):
    _, _, _, client = served
    image, guidance = batch(1, 8, 8)
    assert set(client.metadata()["signatures"]) == {"serving_default", "edit_uint8"}
    with pytest.raises(ServingInvalidArgumentError, match="'fields' not found.*operator head"):
        client.fields(image, guidance)
    with pytest.raises(ServingInvalidArgumentError, match="'edit_masks' not found.*estimator"):
        client.edit_masks(image, emphasize=guidance > 0.5)
    assert client.edit(image, guidance).shape == image.shape


def _masks_request(shape=(2, 8, 8), strength=0.5):
    image, _ = batch(*shape)
    emphasize, deemphasize = masks(*shape)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "sagim"
    request.model_spec.signature_name = "edit_masks"
    for key, value in (
        ("image", image),
        ("emphasize", emphasize),
        ("deemphasize", deemphasize),
        ("strength", np.asarray(strength, np.float32)),
    ):
        request.inputs[key].CopyFrom(to_tensor_proto(value))
    return request


MASK_CASES = {
    "strength_above_one": ("strength", lambda r: np.float32(1.5), "strength: values"),
    "nan_strength": ("strength", lambda r: np.float32(np.nan), "strength: values"),
    "strength_count": ("strength", lambda r: np.full(3, 0.5, np.float32), "holds 3 values"),
    "strength_rank": ("strength", lambda r: np.full((2, 1), 0.5, np.float32), "scalar"),
    "mask_above_one": ("emphasize", lambda r: r * 2, "emphasize: values"),
    "nan_mask": ("deemphasize", lambda r: r * np.nan, "deemphasize: values"),
    "mask_size": ("emphasize", lambda r: r[:, :5], "emphasize: batch, height and width"),
    "uint8_mask": ("emphasize", lambda r: to_uint8(r), "emphasize: expects dtype float32"),
    "no_region": ("emphasize", lambda r: np.zeros_like(r), "no region"),
}


@pytest.mark.parametrize("case", sorted(MASK_CASES))
def test_bad_edit_masks_requests_get_invalid_argument(served_full, case):
    _, _, _, client = served_full
    request = _masks_request()
    key, change, message = MASK_CASES[case]
    if case == "no_region":
        _set(request, "deemphasize", np.zeros((2, 8, 8, 1), np.float32))
    _set(request, key, change(from_tensor_proto(request.inputs[key])))
    with pytest.raises(grpc.RpcError) as info:
        client.stub.Predict(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert message in info.value.details()
    response = client.stub.Predict(_masks_request(), timeout=30)
    assert response.outputs["edited"].tensor_shape.dim[1].size == 8


def test_edit_masks_client_errors(served_full):
    _, _, _, client = served_full
    image, guidance = batch(1, 8, 8)
    with pytest.raises(InputError, match="give an emphasize mask"):
        client.edit_masks(image)
    with pytest.raises(InputError, match="does not match"):
        client.edit_masks(image, emphasize=guidance[:, :5])
    with pytest.raises(ServingInvalidArgumentError, match="strength"):
        client.edit_masks(image, emphasize=guidance, strength=2.0)


def test_readme_client_example_runs_edit_masks(served_full, capsys):
    _, _, server, _ = served_full
    code = readme_python("gRPC client")
    assert "client.edit_masks(" in code
    scope = {}
    exec(code.replace('"localhost", 8500', f'"127.0.0.1", {server.port}'), scope)
    assert "emphasize" in scope and scope["edited"].shape == scope["image"].shape
    assert "edit_masks" in capsys.readouterr().out
