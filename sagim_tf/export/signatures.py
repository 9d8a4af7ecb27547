"""The serving signatures of an exported G: names, input/output keys, dtypes and ranges.

One table for everything that writes or reads an exported G: the SavedModel exporter
builds its endpoints from it, the TFLite export names its tensors with its keys, and the
gRPC server and client (one floor up, in ``sagim_tf.serving``) check and encode requests
against it. Dtypes are written as names (``"float32"``, ``"uint8"``) that each reader
maps to its own type: ``tf.as_dtype``, ``np.dtype`` or a ``TensorProto`` dtype enum.

Every model has the two edit signatures; two more are exported only when the model can
offer them (:func:`signatures_for` says which a given model has, from
:attr:`Signature.requires`). The first input of each signature is ``image``; every other
map input must have the image's batch, height and width.

Signatures (any batch B, height H and width W):

``serving_default`` (every model)
    inputs ``image`` float32 (B, H, W, 3) in [0, 1] and ``guidance`` float32 (B, H, W, 1)
    in [0, 1]; output ``edited`` float32 (B, H, W, 3) in [0, 1].
``edit_uint8`` (every model)
    ``image`` uint8 (B, H, W, 3) in [0, 255], ``guidance`` as above; output ``edited``
    uint8 (B, H, W, 3), ``floor(255 * edited + 0.5)``. Both directions carry a quarter of
    the bytes of ``serving_default``.
``fields`` (operator-head G only, ``SaGIMGenerator(head="operators")``)
    inputs ``image`` and ``guidance`` as for ``serving_default``; output ``fields``
    float32 (B, H, W, 7): G's raw operator fields at the input's resolution (G's working
    resolution: send the small copy G would run on, its longer side ``G.work_size``).
    Channels in the order of
    :data:`~sagim_tf.layers.photo_operators.OPERATOR_NAMES` (temperature, tint, exposure,
    contrast, tone, saturation, detail); each operator's setting is
    ``range * tanh(field)``, with the ranges in
    :data:`~sagim_tf.layers.photo_operators.OPERATOR_RANGES` and the operators' formulas
    in :mod:`sagim_tf.layers.photo_operators`. A phone or a browser resizes the fields
    (or the coefficients computed from them) to the full-resolution photo and applies them
    itself, as :func:`sagim_tf.models.generate.apply_fields` does. Values are unbounded
    reals; 0 is "no change".
``edit_masks`` (a model exported with a graph-traceable estimator E)
    inputs ``image`` float32 (B, H, W, 3) in [0, 1], ``emphasize`` float32 (B, H, W, 1)
    in [0, 1] (the region to draw the eye to: pixels above 0.5), ``deemphasize`` float32
    (B, H, W, 1) in [0, 1] (the region to tone down: pixels above 0.5) and ``strength``
    float32, a scalar or one value per image (B,), in [0, 1]; output ``edited`` float32
    (B, H, W, 3) in [0, 1]. A mask with no pixel above 0.5 (all zeros) means "no region
    of that kind"; each image needs at least one region. Inside the graph: E's map of the
    image, the guiding map of :func:`sagim_tf.guidance.guidance_from_boxes` with the two
    masks as its regions (:mod:`sagim_tf.export.guidance_graph`), then the edit of
    :func:`sagim_tf.inference.editor.edit_image` at the image's size: the residual head
    gets ``blend_guidance(E(I), target, strength)``, the operator head's fields are
    scaled by ``strength`` (0 returns the photo exactly).

Example:

```python
from sagim_tf.export.signatures import SIGNATURES, IMAGE_KEY, signatures_for

spec = SIGNATURES["edit_uint8"].inputs[IMAGE_KEY]
assert (spec.dtype, spec.channels, spec.max_value) == ("uint8", 3, 255.0)
assert signatures_for(operator_head=True, estimator=False) == (
    "serving_default", "edit_uint8", "fields"
)
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
FIELDS_KEY = "fields"
EMPHASIZE_KEY = "emphasize"
DEEMPHASIZE_KEY = "deemphasize"
STRENGTH_KEY = "strength"
DEFAULT_SIGNATURE = "serving_default"
FIELDS_SIGNATURE = "fields"
EDIT_MASKS_SIGNATURE = "edit_masks"

#: What a signature may require of the exported model (:attr:`Signature.requires`).
NEEDS_OPERATOR_HEAD = "operator_head"  # G predicts operator fields (head="operators")
NEEDS_ESTIMATOR = "estimator"  # an estimator E that can be traced into the graph
#: The number of operator fields (``sagim_tf.layers.photo_operators.NUM_OPERATORS``;
#: tests/test_export_fields.py checks they agree).
NUM_FIELDS = 7


@dataclasses.dataclass(frozen=True)
class TensorKey:
    """One named tensor of a signature.

    A map is shaped (B, H, W, ``channels``); a per-image value (``channels`` None) is a
    scalar or a vector (B,) of one value per image.

    Args:
        dtype: str. The NumPy/TensorFlow dtype name, ``"float32"`` or ``"uint8"``.
        channels: int or None. The size of a map's last axis; None for a per-image value.
        max_value: float. Values lie in ``[min_value, max_value]``; an input outside is
            rejected (``inf`` for an unbounded output).
        min_value: float. Defaults to `0.0`.
    """

    dtype: str
    channels: int | None
    max_value: float
    min_value: float = 0.0

    @property
    def is_map(self) -> bool:
        """Whether this is a (B, H, W, channels) map rather than a per-image value."""
        return self.channels is not None


@dataclasses.dataclass(frozen=True)
class Signature:
    """A named signature: ``inputs`` and ``outputs`` map each key to its :class:`TensorKey`.

    Args:
        name: str. The signature's name in the SavedModel (TF Serving's ``signature_name``).
        inputs: mapping of str to TensorKey. The inputs, ``image`` first.
        outputs: mapping of str to TensorKey. The outputs.
        requires: tuple of str. What the model must offer for this signature to be
            exported (:data:`NEEDS_OPERATOR_HEAD`, :data:`NEEDS_ESTIMATOR`); empty for the
            signatures every model has. Defaults to `()`.
    """

    name: str
    inputs: Mapping[str, TensorKey]
    outputs: Mapping[str, TensorKey]
    requires: tuple[str, ...] = ()


_FLOAT_IMAGE = TensorKey("float32", 3, 1.0)
_MAP = TensorKey("float32", 1, 1.0)


def _signature(name: str, inputs: dict, outputs: dict, requires=()) -> Signature:
    return Signature(
        name=name,
        inputs=types.MappingProxyType(inputs),
        outputs=types.MappingProxyType(outputs),
        requires=tuple(requires),
    )


#: Signature name -> :class:`Signature`, in the order they are exported.
SIGNATURES: Mapping[str, Signature] = types.MappingProxyType(
    {
        DEFAULT_SIGNATURE: _signature(
            DEFAULT_SIGNATURE,
            {IMAGE_KEY: _FLOAT_IMAGE, GUIDANCE_KEY: _MAP},
            {OUTPUT_KEY: _FLOAT_IMAGE},
        ),
        "edit_uint8": _signature(
            "edit_uint8",
            {IMAGE_KEY: TensorKey("uint8", 3, 255.0), GUIDANCE_KEY: _MAP},
            {OUTPUT_KEY: TensorKey("uint8", 3, 255.0)},
        ),
        FIELDS_SIGNATURE: _signature(
            FIELDS_SIGNATURE,
            {IMAGE_KEY: _FLOAT_IMAGE, GUIDANCE_KEY: _MAP},
            {FIELDS_KEY: TensorKey("float32", NUM_FIELDS, float("inf"), float("-inf"))},
            requires=(NEEDS_OPERATOR_HEAD,),
        ),
        EDIT_MASKS_SIGNATURE: _signature(
            EDIT_MASKS_SIGNATURE,
            {
                IMAGE_KEY: _FLOAT_IMAGE,
                EMPHASIZE_KEY: _MAP,
                DEEMPHASIZE_KEY: _MAP,
                STRENGTH_KEY: TensorKey("float32", None, 1.0),
            },
            {OUTPUT_KEY: _FLOAT_IMAGE},
            requires=(NEEDS_ESTIMATOR,),
        ),
    }
)

#: The signatures every exported model has (old exports have exactly these).
REQUIRED_SIGNATURES: tuple[str, ...] = tuple(
    name for name, signature in SIGNATURES.items() if not signature.requires
)


def signatures_for(operator_head: bool, estimator: bool) -> tuple[str, ...]:
    """The names of the signatures a model exports, in table order.

    Args:
        operator_head: bool. G predicts operator fields (``head="operators"``).
        estimator: bool. An estimator E that can be traced into the graph comes with it.
    """
    offered = {NEEDS_OPERATOR_HEAD: bool(operator_head), NEEDS_ESTIMATOR: bool(estimator)}
    return tuple(
        name
        for name, signature in SIGNATURES.items()
        if all(offered[need] for need in signature.requires)
    )


def get_signature(name: str) -> Signature:
    """The :class:`Signature` called ``name``.

    Raises:
        ConfigError: no signature has that name (the message lists the known ones).
    """
    if name not in SIGNATURES:
        raise ConfigError(f"unknown signature {name!r}; known: {list(SIGNATURES)}")
    return SIGNATURES[name]
