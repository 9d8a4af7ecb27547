"""The serving signatures of an exported G: names, input/output keys, dtypes and ranges.

One table for everything that writes or reads an exported G: the SavedModel exporter
builds its endpoints from it, the TFLite export names its tensors with its keys, and the
gRPC server and client (one floor up, in ``sagim_tf.serving``) check and encode requests
against it. Dtypes are written as names (``"float32"``, ``"uint8"``) that each reader
maps to its own type: ``tf.as_dtype``, ``np.dtype`` or a ``TensorProto`` dtype enum.

Signatures (any batch B, height H and width W):

``serving_default``
    inputs ``image`` float32 (B, H, W, 3) in [0, 1] and ``guidance`` float32 (B, H, W, 1)
    in [0, 1]; output ``edited`` float32 (B, H, W, 3) in [0, 1].
``edit_uint8``
    ``image`` uint8 (B, H, W, 3) in [0, 255], ``guidance`` as above; output ``edited``
    uint8 (B, H, W, 3), ``floor(255 * edited + 0.5)``. Both directions carry a quarter of
    the bytes of ``serving_default``.

Example:

```python
from sagim_tf.export.signatures import SIGNATURES, IMAGE_KEY

spec = SIGNATURES["edit_uint8"].inputs[IMAGE_KEY]
assert (spec.dtype, spec.channels, spec.max_value) == ("uint8", 3, 255.0)
```
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping

from sagim_tf.utils.errors import ConfigError

IMAGE_KEY = "image"
GUIDANCE_KEY = "guidance"
OUTPUT_KEY = "edited"
DEFAULT_SIGNATURE = "serving_default"


@dataclasses.dataclass(frozen=True)
class TensorKey:
    """One named tensor of a signature, shaped (B, H, W, ``channels``).

    Args:
        dtype: str. The NumPy/TensorFlow dtype name, ``"float32"`` or ``"uint8"``.
        channels: int. The size of the last axis.
        max_value: float. Values lie in ``[0, max_value]``; an input outside is rejected.
    """

    dtype: str
    channels: int
    max_value: float


@dataclasses.dataclass(frozen=True)
class Signature:
    """A named signature: ``inputs`` and ``outputs`` map each key to its :class:`TensorKey`.

    Args:
        name: str. The signature's name in the SavedModel (TF Serving's ``signature_name``).
        inputs: mapping of str to TensorKey. The inputs, ``image`` then ``guidance``.
        outputs: mapping of str to TensorKey. The output, ``edited``.
    """

    name: str
    inputs: Mapping[str, TensorKey]
    outputs: Mapping[str, TensorKey]


def _signature(name: str, image_dtype: str, image_max: float) -> Signature:
    image = TensorKey(image_dtype, 3, image_max)
    guidance = TensorKey("float32", 1, 1.0)
    return Signature(
        name=name,
        inputs=types.MappingProxyType({IMAGE_KEY: image, GUIDANCE_KEY: guidance}),
        outputs=types.MappingProxyType({OUTPUT_KEY: image}),
    )


#: Signature name -> :class:`Signature`, in the order they are exported.
SIGNATURES: Mapping[str, Signature] = types.MappingProxyType(
    {
        "serving_default": _signature("serving_default", "float32", 1.0),
        "edit_uint8": _signature("edit_uint8", "uint8", 255.0),
    }
)


def get_signature(name: str) -> Signature:
    """The :class:`Signature` called ``name``.

    Raises:
        ConfigError: no signature has that name (the message lists the known ones).
    """
    if name not in SIGNATURES:
        raise ConfigError(f"unknown signature {name!r}; known: {list(SIGNATURES)}")
    return SIGNATURES[name]
