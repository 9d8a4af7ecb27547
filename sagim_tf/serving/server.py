"""Our own PredictionService server for SaGIM SavedModels (``sagim serve``).

For machines without ``tensorflow_model_server``: it implements the same gRPC service
(tensorflow-serving-api's ``PredictionServiceServicer``), so the same clients work
against both. What it does:

* listens on 127.0.0.1 unless told otherwise (another interface is logged as a warning),
  plaintext or TLS (``ssl_cert``/``ssl_key``), and refuses a port already in use (gRPC's
  default ``SO_REUSEPORT`` would let a second server share it silently);
* serves the highest numeric version under ``--model-base-path`` and polls the directory,
  loading a newer (or, if the served one was removed, the newest remaining) version
  without a restart; in-flight requests finish on the version they started with; a
  version that fails to load is logged, the old one goes on serving, and the version is
  tried again once any of its files changes in size or mtime (a copy still arriving);
* ``Predict`` on the signatures of :mod:`sagim_tf.export.signatures` the served version
  has: always ``serving_default`` and ``edit_uint8``, and ``fields`` / ``edit_masks`` where
  the export wrote them (an old export without them still serves); ``GetModelMetadata``
  with the ``signature_def`` field, as TF Serving answers it;
* checks every request before inference -- input names, dtypes, ranks, channel counts,
  matching batch/height/width, a per-image ``strength`` that is a scalar or (B,), a pixel
  budget on the *declared* shapes (before anything of that size is allocated), exactly as
  many values as the shape needs (no broadcasting of one value), a request-size budget,
  finite values in range -- and answers ``INVALID_ARGUMENT`` with a message naming the
  problem, then goes on serving;
* bounds concurrency: a thread pool for RPCs, a cap on queued RPCs (beyond it gRPC
  answers ``RESOURCE_EXHAUSTED``), a semaphore on concurrent inferences, and at most
  ``max_large`` large requests (over ``large_pixels``) at once: one more is answered
  ``RESOURCE_EXHAUSTED`` at once, so small requests do not queue behind large ones;
* stops gracefully: new RPCs are refused, in-flight ones get ``grace`` seconds.

Requests larger than gRPC's receive limit (twice ``max_request_mb``) are refused by gRPC
itself with ``RESOURCE_EXHAUSTED``; those between ``max_request_mb`` and that limit get
``INVALID_ARGUMENT`` from the checks here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import threading
from concurrent import futures

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from sagim_tf.export.savedmodel import load_savedmodel, versions
from sagim_tf.export.signatures import (
    DEFAULT_SIGNATURE,
    IMAGE_KEY,
    REQUIRED_SIGNATURES,
    SIGNATURES,
)
from sagim_tf.serving.options import (
    DEFAULT_HOST,
    DEFAULT_LARGE_PIXELS,
    DEFAULT_MAX_PIXELS,
    MB,
    is_loopback,
    server_options,
)
from sagim_tf.serving.tensors import (
    dtype_enum,
    dtype_name,
    element_count,
    from_tensor_proto,
    proto_shape,
    to_tensor_proto,
)
from sagim_tf.utils.errors import ConfigError, InputError

log = logging.getLogger(__name__)


def _release_free_memory():
    """Hand freed heap memory back to the OS after a large request (glibc's malloc_trim).

    TensorFlow's CPU tensors come from malloc; glibc keeps freed arenas, so without this a
    server that once ran a large request keeps its peak RSS.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


try:
    _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _LIBC.malloc_trim  # noqa: B018 - glibc only
except (OSError, AttributeError):  # pragma: no cover - not glibc
    _LIBC = None


class _Reject(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class ServedModel:
    """One loaded version: the SavedModel's signatures and its SignatureDefMap.

    ``signatures`` holds the table's signatures this version has: the required ones
    (``serving_default``, ``edit_uint8``) and whichever optional ones (``fields``,
    ``edit_masks``) its export wrote.

    Args:
        base_path: str. The model's base path, holding numeric version directories.
        version: int. The version to load.

    Raises:
        InputError: the version cannot be loaded or lacks a required signature.
    """

    def __init__(self, base_path: str, version: int):
        self.version = int(version)
        self.path = os.path.join(base_path, str(version))
        self.loaded = load_savedmodel(self.path)
        missing = [s for s in REQUIRED_SIGNATURES if s not in self.loaded.signatures]
        if missing:
            raise InputError(
                f"{self.path}: SavedModel lacks signature(s) {missing}; "
                "export it with `sagim export`"
            )
        self.signatures = {
            name: self.loaded.signatures[name]
            for name in SIGNATURES
            if name in self.loaded.signatures
        }
        proto = saved_model_pb2.SavedModel()
        with open(os.path.join(self.path, "saved_model.pb"), "rb") as f:
            proto.ParseFromString(f.read())
        self.signature_defs = {
            name: sig
            for name, sig in proto.meta_graphs[0].signature_def.items()
            if not name.startswith("__")
        }


class ModelManager:
    """Holds the served version of one model and swaps in newer ones found by polling.

    Args:
        base_path: str or path. ``export/<name>``, holding numeric version directories.
        poll_interval: float. Seconds between looks for a new version; 0 never looks
            (call :meth:`refresh` yourself). Defaults to `2.0`.

    Raises:
        InputError: the base path is missing or holds no loadable version.
    """

    def __init__(self, base_path, poll_interval: float = 2.0):
        self.base_path = os.path.abspath(os.fspath(base_path))
        if not os.path.isdir(self.base_path):
            raise InputError(
                f"{self.base_path}: model base path not found "
                "(expected export/<name> with numeric version directories)"
            )
        self.poll_interval = float(poll_interval)
        self._lock = threading.Lock()
        self._model: ServedModel | None = None
        self._failed: dict[int, tuple] = {}  # version -> its files' stamp when it failed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh()
        if self._model is None:
            raise InputError(
                f"{self.base_path}: no loadable version directory (<base>/<N>/saved_model.pb) there"
            )

    @property
    def model(self) -> ServedModel:
        with self._lock:
            return self._model

    def _stamp(self, version: int) -> tuple:
        """Path, size and mtime of every file of a version: any change to any file (a
        ``variables/`` arriving after ``saved_model.pb``, a file rewritten by ``cp -a``
        with its old mtime but another size) changes it."""
        root = os.path.join(self.base_path, str(version))
        stamp = []
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                try:
                    info = os.stat(path)
                except OSError:  # removed while we looked: the next look sees the change
                    continue
                stamp.append((os.path.relpath(path, root), info.st_size, info.st_mtime_ns))
        return tuple(stamp)

    def refresh(self) -> bool:
        """Load the highest version present if it is not the one served; True if swapped.

        A version that failed to load is retried once any of its files changes (size or
        mtime, or a file added or removed); meanwhile the served version stays.
        """
        candidates = [
            v
            for v in versions(self.base_path)
            if v not in self._failed or self._failed[v] != self._stamp(v)
        ]
        current = self.model
        if not candidates or (current is not None and candidates[-1] == current.version):
            return False
        target = candidates[-1]
        stamp = self._stamp(target)
        try:
            model = ServedModel(self.base_path, target)
        except Exception as exc:  # a broken export must not take the server down
            log.error(
                "version %d under %s cannot be loaded, keeping %s: %s",
                target,
                self.base_path,
                current.version if current else "none",
                exc,
            )
            self._failed[target] = stamp
            return False
        self._failed.pop(target, None)
        with self._lock:
            self._model = model
        log.info("serving version %d from %s", target, model.path)
        del current  # the old version's graphs go once its in-flight requests finish
        gc.collect()
        _release_free_memory()
        return True

    def _poll(self):
        while not self._stop.wait(self.poll_interval):
            try:
                self.refresh()
            except Exception:  # pragma: no cover - keep polling whatever happens
                log.exception("version poll failed")

    def start(self):
        if self._thread is None and self.poll_interval > 0:
            self._thread = threading.Thread(
                target=self._poll, name="sagim-version-poll", daemon=True
            )
            self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class SagimPredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``Predict`` and ``GetModelMetadata`` for one SaGIM model; the rest UNIMPLEMENTED.

    Args:
        manager: ModelManager. Supplies the served version.
        model_name: str. The name clients ask for. Defaults to `"sagim"`.
        max_concurrent: int. Inferences running at once. Defaults to `2`.
        max_pixels: int. Largest declared B*H*W accepted. Defaults to `4 * 2**20`.
        max_request_mb: float. Largest request accepted, in MB. Defaults to `128`.
        large_pixels: int. A request over this B*H*W is large. Defaults to `2**20`.
        max_large: int. Large requests running at once; one more gets RESOURCE_EXHAUSTED
            at once. Defaults to `1`.
    """

    def __init__(
        self,
        manager: ModelManager,
        model_name: str = "sagim",
        max_concurrent: int = 2,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_request_mb: float = 128,
        large_pixels: int = DEFAULT_LARGE_PIXELS,
        max_large: int = 1,
    ):
        self.manager = manager
        self.model_name = model_name
        self.max_pixels = int(max_pixels)
        self.max_request_bytes = int(max_request_mb * MB)
        self.large_pixels = int(large_pixels)
        self.max_large = int(max_large)
        self._slots = threading.BoundedSemaphore(int(max_concurrent))
        self._large = threading.BoundedSemaphore(self.max_large)

    # ---------------------------------------------------------------- checks
    def _resolve(self, spec) -> ServedModel:
        if spec.name != self.model_name:
            raise _Reject(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found: model {spec.name!r} (this server holds {self.model_name!r})",
            )
        model = self.manager.model
        if spec.HasField("version") and spec.version.value != model.version:
            raise _Reject(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found: {self.model_name!r} version {spec.version.value} "
                f"(serving version {model.version})",
            )
        if spec.version_label:
            raise _Reject(grpc.StatusCode.INVALID_ARGUMENT, "version labels are not supported here")
        return model

    def _check_request(self, request, signature, model: ServedModel):
        invalid = grpc.StatusCode.INVALID_ARGUMENT
        if signature not in model.signatures:
            why = ""
            if signature in SIGNATURES and SIGNATURES[signature].requires:
                needs = " and ".join(SIGNATURES[signature].requires).replace("_", " ")
                why = f" (exported only for a model with an {needs})"
            raise _Reject(
                invalid,
                f"signature {signature!r} not found in version {model.version}{why}; "
                f"available: {sorted(model.signatures)}",
            )
        size = request.ByteSize()
        if size > self.max_request_bytes:
            raise _Reject(
                invalid,
                f"request of {size / MB:.2f} MB exceeds this server's "
                f"{self.max_request_bytes / MB:g} MB limit",
            )
        table = SIGNATURES[signature]
        spec = table.inputs
        names = set(request.inputs)
        if names != set(spec):
            missing, extra = sorted(set(spec) - names), sorted(names - set(spec))
            parts = ([f"missing input(s) {missing}"] if missing else []) + (
                [f"unknown input(s) {extra}"] if extra else []
            )
            raise _Reject(
                invalid, f"{'; '.join(parts)}; signature {signature!r} takes {sorted(spec)}"
            )
        bad_filter = sorted(set(request.output_filter) - set(table.outputs))
        if bad_filter:
            raise _Reject(
                invalid,
                f"unknown output(s) {bad_filter} in output_filter; signature {signature!r} "
                f"has {sorted(table.outputs)}",
            )
        shapes = {}
        for key, tensor in spec.items():
            proto = request.inputs[key]
            if proto.dtype != dtype_enum(tensor.dtype):
                raise _Reject(
                    invalid,
                    f"{key}: expects dtype {tensor.dtype} for signature {signature!r}, "
                    f"got {dtype_name(proto.dtype)}",
                )
            try:
                shape = proto_shape(proto)
            except ValueError as exc:
                raise _Reject(invalid, f"{key}: {exc}") from None
            if tensor.is_map and (len(shape) != 4 or shape[-1] != tensor.channels):
                raise _Reject(
                    invalid, f"{key}: expects shape (B, H, W, {tensor.channels}), got {shape}"
                )
            if not tensor.is_map and len(shape) > 1:
                raise _Reject(
                    invalid, f"{key}: expects a scalar or one value per image (B,), got {shape}"
                )
            shapes[key] = shape
        image_shape = shapes[IMAGE_KEY]
        for key, tensor in spec.items():
            shape = shapes[key]
            if tensor.is_map and shape[:3] != image_shape[:3]:
                raise _Reject(
                    invalid,
                    f"{key}: batch, height and width {shape[:3]} "
                    f"must equal the image's {image_shape[:3]}",
                )
            if not tensor.is_map and shape and shape[0] not in (1, image_shape[0]):
                raise _Reject(
                    invalid,
                    f"{key}: holds {shape[0]} values for a batch of {image_shape[0]} images; "
                    "send one value, or one per image",
                )
        pixels = element_count(image_shape[:3])  # exact: no int64 wrap-around
        if pixels == 0:
            raise _Reject(invalid, f"image: is empty, shape {image_shape}")
        if pixels > self.max_pixels:
            raise _Reject(
                invalid,
                f"image: declared shape {image_shape} is B*H*W = {pixels} pixels, over this "
                f"server's limit of {self.max_pixels} (--max-pixels); send a smaller image",
            )
        arrays = {}
        for key, tensor in spec.items():
            lo, hi = tensor.min_value, tensor.max_value
            try:
                arr = from_tensor_proto(request.inputs[key])
            except ValueError as exc:
                raise _Reject(invalid, f"{key}: malformed tensor: {exc}") from None
            if arr.dtype == np.float32 and arr.size:
                lo_v, hi_v = float(np.min(arr)), float(np.max(arr))
                if not (np.isfinite(lo_v) and np.isfinite(hi_v)) or lo_v < lo or hi_v > hi:
                    raise _Reject(
                        invalid,
                        f"{key}: values must be finite and lie in [{lo:g}, {hi:g}], "
                        f"found range [{lo_v:.4g}, {hi_v:.4g}]",
                    )
            arrays[key] = arr
        return arrays, pixels

    # ---------------------------------------------------------------- RPCs
    def Predict(self, request, context):
        try:
            return self._predict(request, context)
        except _Reject as reject:
            log.info("Predict rejected (%s): %s", reject.code.name, reject.message)
            context.abort(reject.code, reject.message)

    def _predict(self, request, context):
        model = self._resolve(request.model_spec)
        signature = request.model_spec.signature_name or DEFAULT_SIGNATURE
        arrays, pixels = self._check_request(request, signature, model)
        large = pixels > self.large_pixels
        if large and not self._large.acquire(blocking=False):
            raise _Reject(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"server busy: {self.max_large} large request(s) (over {self.large_pixels} "
                "pixels) already running; retry later or send a smaller image",
            )
        try:
            return self._run(model, signature, arrays, request, context)
        finally:
            if large:
                self._large.release()
                _release_free_memory()

    def _run(self, model, signature, arrays, request, context):
        remaining = context.time_remaining()
        wait = None if remaining is None else max(0.0, remaining)
        if not self._slots.acquire(timeout=wait):
            raise _Reject(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "server busy: no inference slot freed before the deadline",
            )
        try:
            fn = model.signatures[signature]
            outputs = fn(**{k: tf.constant(v) for k, v in arrays.items()})
            wanted = list(request.output_filter) or list(SIGNATURES[signature].outputs)
            out = {key: outputs[key].numpy() for key in wanted}
        except tf.errors.InvalidArgumentError as exc:
            raise _Reject(grpc.StatusCode.INVALID_ARGUMENT, exc.message) from None
        except Exception as exc:
            log.exception("inference failed")
            raise _Reject(
                grpc.StatusCode.INTERNAL, f"inference failed: {type(exc).__name__}: {exc}"
            ) from None
        finally:
            self._slots.release()
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.model_name
        response.model_spec.version.value = model.version
        response.model_spec.signature_name = signature
        for key, value in out.items():
            response.outputs[key].CopyFrom(to_tensor_proto(value))
        return response

    def GetModelMetadata(self, request, context):
        try:
            model = self._resolve(request.model_spec)
            fields = list(request.metadata_field)
            if fields != ["signature_def"]:
                raise _Reject(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"metadata_field must be ['signature_def'], got {fields}",
                )
        except _Reject as reject:
            context.abort(reject.code, reject.message)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.model_name
        response.model_spec.version.value = model.version
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        for name, sig in model.signature_defs.items():
            sig_map.signature_def[name].CopyFrom(sig)
        response.metadata["signature_def"].Pack(sig_map)
        return response


def _read_pem(path, label) -> bytes:
    try:
        with open(os.fspath(path), "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"{label} {path}: cannot read it ({exc.strerror})") from None
    if b"-----BEGIN " not in data:
        raise ConfigError(f"{label} {path}: not a PEM file (no '-----BEGIN' line)")
    return data


def _server_credentials(ssl_cert, ssl_key):
    """``grpc.ssl_server_credentials`` of a PEM certificate and key, or None for plaintext."""
    if ssl_cert is None and ssl_key is None:
        return None
    if ssl_cert is None or ssl_key is None:
        raise ConfigError("TLS needs both --ssl-cert and --ssl-key (PEM files)")
    cert = _read_pem(ssl_cert, "--ssl-cert")
    key = _read_pem(ssl_key, "--ssl-key")
    if b"PRIVATE KEY-----" not in key:
        raise ConfigError(f"--ssl-key {ssl_key}: holds no PEM private key")
    try:
        return grpc.ssl_server_credentials([(key, cert)])
    except Exception as exc:  # pragma: no cover - gRPC checks the pair only when binding
        raise ConfigError(f"--ssl-cert/--ssl-key: {exc}") from None


class SagimServer:
    """A gRPC PredictionService serving ``<model_base_path>/<highest version>``.

    Args:
        model_base_path: str or path. ``export/<name>``, holding numeric version directories.
        port: int. TCP port; 0 picks a free one (read ``.port`` after ``start``). A port
            in use is refused. Defaults to `8500`.
        host: str. Interface to bind; ``"0.0.0.0"`` binds all (logged as a warning: anyone
            who reaches the port can use the model). Defaults to `"127.0.0.1"`.
        model_name: str. The name clients ask for. Defaults to `"sagim"`.
        max_workers: int. Threads handling RPCs. Defaults to `16`.
        max_concurrent: int. Inferences running at once (the rest wait for a slot).
            Defaults to `2`.
        max_queued: int. RPCs accepted at once; gRPC answers RESOURCE_EXHAUSTED beyond it.
            Defaults to `128`.
        max_request_mb: float. Largest request accepted, in MB (INVALID_ARGUMENT beyond
            it; gRPC itself refuses messages over twice this). Defaults to `128`.
        max_pixels: int. Largest declared B*H*W accepted (INVALID_ARGUMENT beyond it).
            Defaults to `4 * 2**20` (:data:`~sagim_tf.serving.options.DEFAULT_MAX_PIXELS`).
        poll_interval: float. Seconds between looks for a new version; 0 never looks.
            Defaults to `2.0`.
        large_pixels: int. Requests over this B*H*W are large. Defaults to `2**20`.
        max_large: int. Large requests running at once; more get RESOURCE_EXHAUSTED at
            once. Defaults to `1`.
        ssl_cert: str, path or None. PEM certificate (chain) for TLS; with ``ssl_key``.
            None serves plaintext. Defaults to `None`.
        ssl_key: str, path or None. PEM private key of ``ssl_cert``. Defaults to `None`.

    Example:

    ```python
    with SagimServer("export/sagim", port=8500) as server:
        server.wait()  # until server.stop() is called from another thread
    ```
    """

    def __init__(
        self,
        model_base_path,
        port: int = 8500,
        host: str = DEFAULT_HOST,
        model_name: str = "sagim",
        max_workers: int = 16,
        max_concurrent: int = 2,
        max_queued: int = 128,
        max_request_mb: float = 128,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        poll_interval: float = 2.0,
        large_pixels: int = DEFAULT_LARGE_PIXELS,
        max_large: int = 1,
        ssl_cert=None,
        ssl_key=None,
    ):
        for label, value in (
            ("max_workers", max_workers),
            ("max_concurrent", max_concurrent),
            ("max_queued", max_queued),
            ("max_request_mb", max_request_mb),
            ("max_pixels", max_pixels),
            ("large_pixels", large_pixels),
            ("max_large", max_large),
        ):
            if value is None or value <= 0:
                raise ConfigError(f"{label} must be > 0, got {value}")
        if not 0 <= int(port) <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {port}")
        self.credentials = _server_credentials(ssl_cert, ssl_key)
        self.manager = ModelManager(model_base_path, poll_interval=poll_interval)
        self.model_name = model_name
        self.host = host
        self.requested_port = int(port)
        self.port = None
        self.servicer = SagimPredictionServicer(
            self.manager,
            model_name,
            max_concurrent=max_concurrent,
            max_pixels=max_pixels,
            max_request_mb=max_request_mb,
            large_pixels=large_pixels,
            max_large=max_large,
        )
        self._server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=int(max_workers), thread_name_prefix="sagim-rpc"
            ),
            options=server_options(2 * max_request_mb),
            maximum_concurrent_rpcs=int(max_queued),
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            self.servicer, self._server
        )
        self._stopped = threading.Event()

    @property
    def version(self) -> int:
        return self.manager.model.version

    @property
    def tls(self) -> bool:
        """Whether the server speaks TLS."""
        return self.credentials is not None

    @property
    def exposure_warning(self) -> str:
        """A warning when the server listens beyond this machine ("" on loopback)."""
        if is_loopback(self.host):
            return ""
        how = "with TLS" if self.tls else "in plaintext, without TLS"
        advice = "" if self.tls else "; --ssl-cert/--ssl-key add TLS"
        return (
            f"listening on {self.host}, not only on this machine, {how}: anyone who reaches "
            f"port {self.port or self.requested_port} can run the model (bind 127.0.0.1 "
            f"unless that is meant{advice})"
        )

    def start(self, warn: bool = True) -> int:
        """Bind and start serving; return the bound port.

        Args:
            warn: bool. Log :attr:`exposure_warning` when the host is not loopback
                (``sagim serve`` prints it itself). Defaults to `True`.

        Raises:
            ConfigError: the port is in use (by another ``sagim serve``, TF Serving, ...)
                or the address cannot be bound.
        """
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        address = f"{host}:{self.requested_port}"
        try:
            if self.credentials is None:
                self.port = self._server.add_insecure_port(address)
            else:
                self.port = self._server.add_secure_port(address, self.credentials)
        except RuntimeError:  # grpc >= 1.60 raises where older ones returned 0
            self.port = 0
        if not self.port:
            raise ConfigError(
                f"cannot listen on {address}: the port is in use (another `sagim serve` or "
                "TF Serving?) or the address is not one of this machine's; pick another "
                "--port or stop the other server"
            )
        self._server.start()
        self.manager.start()
        if warn and self.exposure_warning:
            log.warning("%s", self.exposure_warning)
        log.info(
            "model %r version %d on %s:%d%s",
            self.model_name,
            self.version,
            self.host,
            self.port,
            " (TLS)" if self.tls else "",
        )
        return self.port

    def stop(self, grace: float | None = 5.0) -> None:
        """Refuse new RPCs, give in-flight ones ``grace`` seconds, stop polling."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._server.stop(grace).wait()
        self.manager.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` is called (or ``timeout``); True if stopped."""
        return self._stopped.wait(timeout)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop(grace=1.0)
