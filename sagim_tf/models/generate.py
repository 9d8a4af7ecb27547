"""G's one compiled generate step, shared by every caller that edits with G.

:func:`make_generate_function` wraps G's inference pass in a ``tf.function`` once per
generator and caches it (the pattern of keras-hub's ``make_generate_function``): the
editor (:class:`~sagim_tf.inference.editor.Editor`), ``SaGIM.edit``, the evaluation
methods and the training image grid all run G through it. :func:`generate` is the NumPy
face: it normalises and checks the inputs once, batches them through the step and returns
a NumPy array of the input's shape.
"""

from __future__ import annotations

import weakref

import numpy as np
import tensorflow as tf

from sagim_tf.utils.checks import check_image, check_map
from sagim_tf.utils.errors import ConfigError

#: generator -> its compiled step. Weak keys: a step does not keep its G alive.
_GENERATE_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

#: Any batch and size, one trace: G is fully convolutional.
_SIGNATURE = (
    tf.TensorSpec((None, None, None, 3), tf.float32, name="image"),
    tf.TensorSpec((None, None, None, 1), tf.float32, name="guidance"),
)


def make_generate_function(generator):
    """G's compiled generate step, built at the first call and cached per generator.

    The step maps float32 ``image`` (B, H, W, 3) and ``guidance`` (B, H, W, 1) to G's edit
    ``G([image, guidance], training=False)``, clipped to [0, 1], as a tensor. It is traced
    once for any batch and size.

    Args:
        generator: keras.Model. G, called as ``G([image, guidance])``.

    Returns:
        The ``tf.function``; the same object for every call with the same ``generator``.
    """
    step = _GENERATE_FUNCTIONS.get(generator)
    if step is not None:
        return step
    # Only a weak reference in the closure, so the cache's value does not hold its key.
    generator_ref = weakref.ref(generator)

    @tf.function(input_signature=_SIGNATURE)
    def generate_step(image, guidance):
        edited = generator_ref()([image, guidance], training=False)
        return tf.clip_by_value(tf.cast(edited, tf.float32), 0.0, 1.0)

    _GENERATE_FUNCTIONS[generator] = generate_step
    return generate_step


def normalize_generate_inputs(image, guidance):
    """Check and batch the inputs of :func:`generate` once.

    Args:
        image: array-like. (H, W, 3) or (B, H, W, 3) in [0, 1]; uint8 is scaled by 1/255.
        guidance: array-like. (H, W[, 1]) or (B, H, W[, 1]) in [0, 1], the image's size.

    Returns:
        ``(image, guidance, single)``: float32 batches (B, H, W, 3) and (B, H, W, 1), and
        whether the input was one unbatched image.
    """
    image = check_image(image)
    guidance = check_map(guidance, "guidance", like=image)
    single = image.ndim == 3
    if single:
        image, guidance = image[None], guidance[None]
    return image, guidance, single


def generate(generator, image, guidance, batch_size: int | None = None) -> np.ndarray:
    """G's edit of NumPy images through the cached compiled step.

    Args:
        generator: keras.Model. G.
        image: array-like. (H, W, 3) or (B, H, W, 3) in [0, 1] (uint8 is scaled).
        guidance: array-like. The guiding map(s) of the image's size, in [0, 1].
        batch_size: int or None. Images per call of G; ``None`` runs them all at once.
            Defaults to ``None``.

    Returns:
        float32 array in [0, 1] of the image's shape.

    Raises:
        InputError: an input has the wrong shape, values outside [0, 1] or non-finite ones.
        ConfigError: ``batch_size`` is not a positive integer.
    """
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ConfigError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    image, guidance, single = normalize_generate_inputs(image, guidance)
    step = make_generate_function(generator)
    size = batch_size or len(image)
    out = np.concatenate(
        [
            np.asarray(step(image[i : i + size], guidance[i : i + size]))
            for i in range(0, len(image), size)
        ],
        axis=0,
    )
    return out[0] if single else out
