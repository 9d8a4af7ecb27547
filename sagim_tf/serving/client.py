"""A gRPC client for SaGIM's SavedModel, served by TF Serving or by ``sagim serve``.

Built on tensorflow-serving-api's ``PredictionServiceStub``, so it talks to the official
``tensorflow_model_server`` and to our own server alike. Inputs are prepared for the
signatures of :mod:`sagim_tf.export.signatures`: :meth:`SagimServingClient.edit` calls
``serving_default`` or ``edit_uint8``, :meth:`~SagimServingClient.fields` calls ``fields``
(operator-head models) and :meth:`~SagimServingClient.edit_masks` calls ``edit_masks``
(models exported with an estimator; no E needed on the client).

Example:

```python
from sagim_tf.serving import SagimServingClient

with SagimServingClient("127.0.0.1", 8500) as client:
    edited = client.edit(image, guidance)  # float32 in [0, 1]
    edited8 = client.edit(image, guidance, signature="edit_uint8")  # uint8
    edited = client.edit_masks(image, emphasize=mask, strength=0.8)  # E runs on the server
    client.metadata()["signatures"]["serving_default"]
```
"""

from __future__ import annotations

import grpc
import numpy as np
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from sagim_tf.export.signatures import (
    DEEMPHASIZE_KEY,
    DEFAULT_SIGNATURE,
    EDIT_MASKS_SIGNATURE,
    EMPHASIZE_KEY,
    FIELDS_KEY,
    FIELDS_SIGNATURE,
    GUIDANCE_KEY,
    IMAGE_KEY,
    OUTPUT_KEY,
    STRENGTH_KEY,
    get_signature,
)
from sagim_tf.serving.errors import (
    ServingBusyError,
    ServingError,
    ServingInvalidArgumentError,
    ServingNotFoundError,
    ServingTimeoutError,
    ServingUnavailableError,
)
from sagim_tf.serving.options import DEFAULT_MAX_MESSAGE_MB, channel_options
from sagim_tf.serving.tensors import dtype_name, from_tensor_proto, to_tensor_proto
from sagim_tf.utils.errors import ConfigError, InputError


class SagimServingClient:
    """Calls ``Predict`` and ``GetModelMetadata`` on a PredictionService.

    Args:
        host: str. The server's host name or address. Defaults to `"127.0.0.1"`.
        port: int. The server's gRPC port. Defaults to `8500`.
        model_name: str. TF Serving's model name. Defaults to `"sagim"`.
        timeout: float. Seconds per call. Defaults to `30.0`.
        max_message_mb: float. Send and receive limit in MB (gRPC's default of 4 MB is one
            640x480 float image). Defaults to `256`.
        version: int or None. Ask for this version; None takes the server's latest.
            Defaults to `None`.
        tls: bool. Speak TLS (``sagim serve --ssl-cert/--ssl-key``, TF Serving's SSL
            config); implied by ``ssl_root_cert``. Defaults to `False`.
        ssl_root_cert: str, path, bytes or None. PEM certificate(s) to trust: the server's
            own certificate when it is self-signed, or the CA that signed it; None trusts
            the system's CAs. Defaults to `None`.
        ssl_target_name: str or None. The name the server's certificate must hold when it
            is not ``host`` (gRPC's ``ssl_target_name_override``). Defaults to `None`.

    Raises (from calls):
        ServingUnavailableError: nothing answers (UNAVAILABLE).
        ServingInvalidArgumentError: the server rejected the inputs (INVALID_ARGUMENT).
        ServingTimeoutError: no answer within ``timeout`` (DEADLINE_EXCEEDED).
        ServingNotFoundError: unknown model name or version (NOT_FOUND).
        ServingBusyError: the server is busy or the message too large (RESOURCE_EXHAUSTED).
        ServingError: any other gRPC failure, with ``code`` and ``details``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8500,
        model_name: str = "sagim",
        timeout: float = 30.0,
        max_message_mb: float = DEFAULT_MAX_MESSAGE_MB,
        version: int | None = None,
        tls: bool = False,
        ssl_root_cert=None,
        ssl_target_name: str | None = None,
    ):
        if timeout is None or timeout <= 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {timeout}")
        if max_message_mb <= 0:
            raise ConfigError(f"max_message_mb must be > 0, got {max_message_mb}")
        self.target = f"{host}:{int(port)}"
        self.model_name = model_name
        self.timeout = float(timeout)
        self.version = version
        options = channel_options(max_message_mb)
        if tls or ssl_root_cert is not None:
            root = ssl_root_cert
            if root is not None and not isinstance(root, bytes):
                try:
                    with open(root, "rb") as f:
                        root = f.read()
                except OSError as exc:
                    raise ConfigError(
                        f"ssl_root_cert {ssl_root_cert}: cannot read it ({exc.strerror})"
                    ) from None
            if ssl_target_name:
                options.append(("grpc.ssl_target_name_override", ssl_target_name))
            credentials = grpc.ssl_channel_credentials(root_certificates=root)
            self.channel = grpc.secure_channel(self.target, credentials, options=options)
        else:
            self.channel = grpc.insecure_channel(self.target, options=options)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    # ---------------------------------------------------------------- lifecycle
    def close(self) -> None:
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the channel connects; ServingUnavailableError after ``timeout``."""
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise ServingUnavailableError(
                f"no gRPC server at {self.target} after {timeout:g} s", grpc.StatusCode.UNAVAILABLE
            ) from None

    # ---------------------------------------------------------------- calls
    def _spec(self, spec, signature=None):
        spec.name = self.model_name
        if self.version is not None:
            spec.version.value = int(self.version)
        if signature is not None:
            spec.signature_name = signature

    def _call(self, method, request, what):
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise self._error(exc, what) from None

    def _error(self, exc: grpc.RpcError, what: str) -> ServingError:
        code = exc.code() if hasattr(exc, "code") else None
        details = (exc.details() if hasattr(exc, "details") else "") or ""
        where = f"{what} on {self.target} (model {self.model_name!r})"
        if code == grpc.StatusCode.UNAVAILABLE:
            return ServingUnavailableError(
                f"{where}: server unavailable -- is it running and listening there? ({details})",
                code,
                details,
            )
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return ServingInvalidArgumentError(
                f"{where}: request rejected: {details}", code, details
            )
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return ServingTimeoutError(
                f"{where}: no answer within {self.timeout:g} s", code, details
            )
        if code == grpc.StatusCode.NOT_FOUND:
            return ServingNotFoundError(f"{where}: not found: {details}", code, details)
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return ServingBusyError(
                f"{where}: resource exhausted (message too large or server busy): {details}",
                code,
                details,
            )
        name = code.name if code is not None else "UNKNOWN"
        return ServingError(f"{where}: {name}: {details}", code, details)

    @staticmethod
    def _prepare(image, guidance, signature):
        image_dtype = np.dtype(get_signature(signature).inputs[IMAGE_KEY].dtype)
        image = np.asarray(image)
        if image.ndim not in (3, 4):
            raise InputError(f"image: expected (H, W, 3) or (B, H, W, 3), got {image.shape}")
        guidance = np.asarray(0.0 if guidance is None else guidance)
        if guidance.ndim == image.ndim - 1:
            guidance = guidance[..., None]
        if image.dtype != np.uint8 and not np.issubdtype(image.dtype, np.floating):
            raise InputError(f"image: expected float in [0, 1] or uint8, got {image.dtype}")
        if image_dtype == np.uint8:
            if image.dtype != np.uint8:
                image = image.astype(np.float32)
                if image.size and not (
                    np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1
                ):
                    raise InputError(
                        "image: float values must be finite and lie in [0, 1] to be sent as uint8"
                    )
                image = np.floor(image * 255.0 + 0.5).astype(np.uint8)
        elif image.dtype == np.uint8:
            image = image.astype(np.float32) / 255.0
        return image.astype(image_dtype, copy=False), guidance.astype(np.float32, copy=False)

    def predict(self, inputs: dict, signature: str = DEFAULT_SIGNATURE) -> tuple[dict, int]:
        """Send raw ``{name: array}`` inputs; return ``({name: array}, model_version)``.

        Args:
            inputs: dict of str to array. float32 or uint8 arrays, sent as they are.
            signature: str. The signature to call. Defaults to `"serving_default"`.
        """
        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, signature)
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(to_tensor_proto(value))
        response = self._call(self.stub.Predict, request, "Predict")
        outputs = {key: from_tensor_proto(proto) for key, proto in response.outputs.items()}
        return outputs, int(response.model_spec.version.value)

    def edit(self, image, guidance, signature: str = DEFAULT_SIGNATURE) -> np.ndarray:
        """Edit ``image`` (H, W, 3) or (B, H, W, 3) under ``guidance``; return ``edited``.

        Args:
            image: array. float in [0, 1] or uint8, converted to the signature's dtype.
            guidance: array. (H, W), (H, W, 1) or batched, float in [0, 1].
            signature: str. ``"serving_default"`` returns float32 in [0, 1];
                ``"edit_uint8"`` sends the image as uint8 (float input is rounded first)
                and returns uint8. Defaults to `"serving_default"`.
        """
        image, guidance = self._prepare(image, guidance, signature)
        single = image.ndim == 3
        if single:
            image, guidance = image[None], guidance[None]
        outputs, _ = self.predict({IMAGE_KEY: image, GUIDANCE_KEY: guidance}, signature)
        return self._output(outputs, OUTPUT_KEY, single)

    def _output(self, outputs: dict, key: str, single: bool) -> np.ndarray:
        if key not in outputs:
            raise ServingError(
                f"Predict on {self.target}: the response has no {key!r} output "
                f"(got {sorted(outputs)})"
            )
        return outputs[key][0] if single else outputs[key]

    def fields(self, image, guidance) -> np.ndarray:
        """An operator-head G's raw fields of ``image`` under ``guidance`` (``fields``).

        Send G's working-size copy of the photo; apply the fields to the full-size photo
        with :func:`sagim_tf.models.generate.apply_fields` (or your own port of
        :mod:`sagim_tf.layers.photo_operators`: setting = range * tanh(field)).

        Args:
            image: array. (H, W, 3) or (B, H, W, 3), float in [0, 1] or uint8.
            guidance: array. (H, W), (H, W, 1) or batched, float in [0, 1].

        Returns:
            float32 (H, W, 7) or (B, H, W, 7). A model with a residual head has no
            ``fields`` signature: the server answers INVALID_ARGUMENT
            (:class:`ServingInvalidArgumentError`).
        """
        image, guidance = self._prepare(image, guidance, FIELDS_SIGNATURE)
        single = image.ndim == 3
        if single:
            image, guidance = image[None], guidance[None]
        outputs, _ = self.predict({IMAGE_KEY: image, GUIDANCE_KEY: guidance}, FIELDS_SIGNATURE)
        return self._output(outputs, FIELDS_KEY, single)

    def edit_masks(self, image, emphasize=None, deemphasize=None, strength=1.0) -> np.ndarray:
        """Edit ``image`` from region masks; E and the guidance rule run on the server.

        Calls ``edit_masks``: the server computes E's map, the guiding map of
        :func:`sagim_tf.guidance.guidance_from_boxes` with the masks as regions, and the
        edit. Give at least one mask.

        Args:
            image: array. (H, W, 3) or (B, H, W, 3), float in [0, 1] or uint8.
            emphasize: array or None. The region(s) to draw the eye to: (H, W), (H, W, 1)
                or batched, bool or float in [0, 1] (pixels above 0.5 are inside); None
                for no such region. Defaults to `None`.
            deemphasize: array or None. The region(s) to tone down, the same way.
                Defaults to `None`.
            strength: float or array. A in [0, 1], one for all images or one per image.
                Defaults to `1.0`.

        Returns:
            float32 (H, W, 3) or (B, H, W, 3) in [0, 1].

        Raises:
            InputError: no mask given, or an input of the wrong shape.
            ServingInvalidArgumentError: the server refused a value (a mask or strength
                outside [0, 1], NaN, an image without any region).
        """
        if emphasize is None and deemphasize is None:
            raise InputError("edit_masks: give an emphasize mask, a deemphasize mask or both")
        image = self._prepare(image, None, EDIT_MASKS_SIGNATURE)[0]
        single = image.ndim == 3
        masks = {}
        for key, mask in ((EMPHASIZE_KEY, emphasize), (DEEMPHASIZE_KEY, deemphasize)):
            if mask is None:
                mask = np.zeros(image.shape[:-1] + (1,), np.float32)
            mask = np.asarray(mask)
            if mask.ndim == image.ndim - 1:
                mask = mask[..., None]
            if mask.shape != image.shape[:-1] + (1,):
                raise InputError(
                    f"{key}: shape {mask.shape} does not match the image's "
                    f"{image.shape[:-1]} (give (H, W) or (H, W, 1) per image)"
                )
            masks[key] = mask.astype(np.float32, copy=False)
        strength = np.asarray(strength, np.float32)
        if strength.ndim > 1:
            raise InputError(
                f"strength: expected a number or one per image (B,), got shape {strength.shape}"
            )
        if single:
            image = image[None]
            masks = {key: mask[None] for key, mask in masks.items()}
        inputs = {IMAGE_KEY: image, **masks, STRENGTH_KEY: strength}
        outputs, _ = self.predict(inputs, EDIT_MASKS_SIGNATURE)
        return self._output(outputs, OUTPUT_KEY, single)

    def metadata(self) -> dict:
        """The served model's name, version and signatures.

        Returns:
            ``{"name", "version", "signatures": {sig: {"inputs"|"outputs": {key: (dtype,
            shape)}}}}``, with -1 for an unknown dimension and None for an unknown rank
            (``strength`` of ``edit_masks``, a scalar or (B,)).
        """
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._spec(request.model_spec)
        request.metadata_field.append("signature_def")
        response = self._call(self.stub.GetModelMetadata, request, "GetModelMetadata")
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        if "signature_def" not in response.metadata or not response.metadata[
            "signature_def"
        ].Unpack(sig_map):
            raise ServingError(f"GetModelMetadata on {self.target}: no signature_def in the answer")

        def describe(infos):
            return {
                key: (
                    dtype_name(info.dtype),
                    None
                    if info.tensor_shape.unknown_rank
                    else tuple(int(d.size) for d in info.tensor_shape.dim),
                )
                for key, info in infos.items()
            }

        signatures = {
            name: {"inputs": describe(sig.inputs), "outputs": describe(sig.outputs)}
            for name, sig in sig_map.signature_def.items()
            if not name.startswith("__")
        }
        return {
            "name": response.model_spec.name,
            "version": int(response.model_spec.version.value),
            "signatures": signatures,
        }
