"""Our own PredictionService server for SaGIM SavedModels (``sagim serve``).

For machines without ``tensorflow_model_server``: it implements the same gRPC service
(tensorflow-serving-api's ``PredictionServiceServicer``), so the same clients work
against both. What it does:

* serves the highest numeric version under ``--model-base-path`` and polls the directory,
  loading a newer (or, if the served one was removed, the newest remaining) version
  without a restart; in-flight requests finish on the version they started with;
* ``Predict`` on the signatures of :mod:`sagim_tf.export.signatures` the served version
  has: always ``serving_default`` and ``edit_uint8``, and ``fields`` / ``edit_masks`` where
  the export wrote them (an old export without them still serves); ``GetModelMetadata``
  with the ``signature_def`` field, as TF Serving answers it;
* checks every request before inference -- input names, dtypes, ranks, channel counts,
  matching batch/height/width, a per-image ``strength`` that is a scalar or (B,), a pixel
  budget, a request-size budget, finite values in range -- and answers
  ``INVALID_ARGUMENT`` with a message naming the problem, then goes on serving;
* bounds concurrency: a thread pool for RPCs, a cap on queued RPCs (beyond it gRPC
  answers ``RESOURCE_EXHAUSTED``) and a semaphore on concurrent inferences;
* stops gracefully: new RPCs are refused, in-flight ones get ``grace`` seconds.

Requests larger than gRPC's receive limit (twice ``max_request_mb``) are refused by gRPC
itself with ``RESOURCE_EXHAUSTED``; those between ``max_request_mb`` and that limit get
``INVALID_ARGUMENT`` from the checks here.
"""

from __future__ import annotations

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
from sagim_tf.serving.options import MB, channel_options
from sagim_tf.serving.tensors import (
    dtype_enum,
    dtype_name,
    from_tensor_proto,
    proto_shape,
    to_tensor_proto,
)
from sagim_tf.utils.errors import ConfigError, InputError

log = logging.getLogger(__name__)


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
        self._failed: dict[int, float] = {}  # version -> mtime it failed at
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

    def _stamp(self, version: int) -> float:
        try:
            return os.path.getmtime(os.path.join(self.base_path, str(version), "saved_model.pb"))
        except OSError:
            return -1.0

    def refresh(self) -> bool:
        """Load the highest version present if it is not the one served; True if swapped.

        A version that failed to load is retried only once its ``saved_model.pb`` changes.
        """
        candidates = [v for v in versions(self.base_path) if self._failed.get(v) != self._stamp(v)]
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
        max_pixels: int. Largest B*H*W accepted. Defaults to `16 * 2**20`.
        max_request_mb: float. Largest request accepted, in MB. Defaults to `128`.
    """

    def __init__(
        self,
        manager: ModelManager,
        model_name: str = "sagim",
        max_concurrent: int = 2,
        max_pixels: int = 16 * 2**20,
        max_request_mb: float = 128,
    ):
        self.manager = manager
        self.model_name = model_name
        self.max_pixels = int(max_pixels)
        self.max_request_bytes = int(max_request_mb * MB)
        self._slots = threading.BoundedSemaphore(int(max_concurrent))

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
                f"request of {size / MB:.1f} MB exceeds this server's "
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
        pixels = int(np.prod(image_shape[:3], dtype=np.int64))
        if pixels == 0:
            raise _Reject(invalid, f"image: is empty, shape {image_shape}")
        if pixels > self.max_pixels:
            raise _Reject(
                invalid,
                f"image: B*H*W = {pixels} pixels exceeds this server's limit of {self.max_pixels}",
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
        return arrays

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
        arrays = self._check_request(request, signature, model)
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


class SagimServer:
    """A gRPC PredictionService serving ``<model_base_path>/<highest version>``.

    Args:
        model_base_path: str or path. ``export/<name>``, holding numeric version directories.
        port: int. TCP port; 0 picks a free one (read ``.port`` after ``start``).
            Defaults to `8500`.
        host: str. Interface to bind; ``"0.0.0.0"`` binds all. Defaults to `"0.0.0.0"`.
        model_name: str. The name clients ask for. Defaults to `"sagim"`.
        max_workers: int. Threads handling RPCs. Defaults to `16`.
        max_concurrent: int. Inferences running at once (the rest wait for a slot).
            Defaults to `2`.
        max_queued: int. RPCs accepted at once; gRPC answers RESOURCE_EXHAUSTED beyond it.
            Defaults to `128`.
        max_request_mb: float. Largest request accepted, in MB (INVALID_ARGUMENT beyond
            it; gRPC itself refuses messages over twice this). Defaults to `128`.
        max_pixels: int. Largest B*H*W accepted (INVALID_ARGUMENT beyond it).
            Defaults to `16 * 2**20`.
        poll_interval: float. Seconds between looks for a new version; 0 never looks.
            Defaults to `2.0`.

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
        host: str = "0.0.0.0",
        model_name: str = "sagim",
        max_workers: int = 16,
        max_concurrent: int = 2,
        max_queued: int = 128,
        max_request_mb: float = 128,
        max_pixels: int = 16 * 2**20,
        poll_interval: float = 2.0,
    ):
        for label, value in (
            ("max_workers", max_workers),
            ("max_concurrent", max_concurrent),
            ("max_queued", max_queued),
            ("max_request_mb", max_request_mb),
            ("max_pixels", max_pixels),
        ):
            if value is None or value <= 0:
                raise ConfigError(f"{label} must be > 0, got {value}")
        if not 0 <= int(port) <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {port}")
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
        )
        self._server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=int(max_workers), thread_name_prefix="sagim-rpc"
            ),
            options=channel_options(2 * max_request_mb),
            maximum_concurrent_rpcs=int(max_queued),
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            self.servicer, self._server
        )
        self._stopped = threading.Event()

    @property
    def version(self) -> int:
        return self.manager.model.version

    def start(self) -> int:
        """Bind and start serving; return the bound port."""
        address = f"{self.host}:{self.requested_port}"
        try:
            self.port = self._server.add_insecure_port(address)
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen on {address}: {exc}") from None
        if not self.port:
            raise ConfigError(f"cannot listen on {address} (port in use?)")
        self._server.start()
        self.manager.start()
        log.info(
            "model %r version %d on %s:%d", self.model_name, self.version, self.host, self.port
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
