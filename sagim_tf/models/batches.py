"""SaGIM's inputs: unpacking what ``fit`` hands over, and checking it in the graph.

``fit``, ``evaluate`` and ``model(...)`` may pass an ``(image, guidance)`` pair, a dict
with those keys, or either wrapped by Keras as ``(x,)`` or ``(x, None, None)``.
:func:`unpack_batch` returns the pair; :func:`check_batch` converts it to float32 and adds
the in-graph checks (finite, in [0, 1], matching sizes) that SaGIM runs when its
``validate_inputs`` is on; :func:`check_eager_pair` is the host-side check of ``call``.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from sagim_tf.utils.checks import check_image, check_map, check_static_pair
from sagim_tf.utils.errors import InputError

BATCH_KEYS = ("image", "guidance")


def unpack_batch(data):
    """``(image, guidance)`` from a batch as Keras passes it to a step or to ``call``.

    Raises:
        InputError: the batch is neither a pair nor a dict with ``image`` and ``guidance``.
    """
    # Keras packs (x, y, sample_weight); x alone arrives as a 1-tuple or with Nones.
    while (
        isinstance(data, (list, tuple))
        and len(data) in (1, 2, 3)
        and (len(data) == 1 or all(d is None for d in data[1:]))
    ):
        data = data[0]
    if isinstance(data, dict):
        missing = [k for k in BATCH_KEYS if k not in data]
        if missing:
            raise InputError(f"SaGIM: batch dict lacks {missing}; got keys {sorted(data)}")
        return data["image"], data["guidance"]
    if isinstance(data, (list, tuple)) and len(data) == 2:
        return data[0], data[1]
    raise InputError(
        "SaGIM: expected batches of (image, guidance) or dicts with 'image' and "
        f"'guidance', got {type(data).__name__}"
    )


def check_batch(image, guidance, validate: bool = True):
    """float32 tensors of a training batch, with its shapes checked.

    Static shapes are checked at once (an :class:`InputError`); with ``validate``, the
    values are checked when the graph runs (finite, in [0, 1], the same batch and size),
    failing with ``tf.errors.InvalidArgumentError`` naming the problem.

    Args:
        image: tensor-like. (B, H, W, 3).
        guidance: tensor-like. (B, H, W, 1).
        validate: bool. Add the in-graph value checks. Defaults to ``True``.
    """
    image = tf.convert_to_tensor(image, dtype=tf.float32)
    guidance = tf.convert_to_tensor(guidance, dtype=tf.float32)
    check_static_pair(image.shape, guidance.shape)
    if not validate:
        return image, guidance
    checks = []
    for tensor, name in ((image, "image"), (guidance, "guidance")):
        checks.append(tf.debugging.assert_all_finite(tensor, f"{name} contains NaN or Inf"))
        checks.append(
            tf.debugging.assert_greater_equal(
                tensor, 0.0, message=f"{name} values must lie in [0, 1]"
            )
        )
        checks.append(
            tf.debugging.assert_less_equal(tensor, 1.0, message=f"{name} values must lie in [0, 1]")
        )
    checks.append(
        tf.debugging.assert_equal(
            tf.shape(image)[:3],
            tf.shape(guidance)[:3],
            message="guidance must have the image's batch, height and width",
        )
    )
    with tf.control_dependencies(checks):
        return tf.identity(image), tf.identity(guidance)


def check_eager_pair(image, guidance):
    """Host-side check of concrete inputs to ``SaGIM.call``; symbolic ones pass unchanged.

    Returns:
        ``(image, guidance)``: checked float32 NumPy arrays for concrete inputs.
    """
    if not tf.executing_eagerly() or keras.backend.is_keras_tensor(image):
        return image, guidance
    image = check_image(np.asarray(image))
    return image, check_map(np.asarray(guidance), "guidance", like=image)
