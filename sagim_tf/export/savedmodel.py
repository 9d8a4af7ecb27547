"""G as a SavedModel for TF Serving, with explicitly named signatures.

Layout (what ``tensorflow_model_server --model_base_path=<out>/<name>`` expects)::

    <out>/models.config                 TF Serving model config (model_config_list)
    <out>/<name>/<version>/saved_model.pb, variables/

The signatures, ``serving_default`` (float32 in, float32 out) and ``edit_uint8`` (uint8
image in, uint8 out), are described by the one table in
:mod:`sagim_tf.export.signatures`; each endpoint here is built from it.

Both check their inputs inside the graph (batch, height and width of the two inputs agree,
neither is empty, values are finite and in range). A failed check is an
``InvalidArgumentError``, which TF Serving answers with gRPC ``INVALID_ARGUMENT``.
The checks cost one comparison pass over the inputs.

A plain ``model.export`` in Keras 3 names the inputs and outputs ``args_0``/``output_0``,
so the signatures here are built with :class:`keras.export.ExportArchive` and named
:class:`tf.TensorSpec` endpoints that return dicts.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile

import keras
import tensorflow as tf

from sagim_tf.export.signatures import (
    GUIDANCE_KEY,
    IMAGE_KEY,
    OUTPUT_KEY,
    SIGNATURES,
    Signature,
    get_signature,
)
from sagim_tf.utils.errors import ConfigError, ExportError, InputError
from sagim_tf.utils.io import write_text

log = logging.getLogger(__name__)


def _specs(signature: Signature, batch=None, height=None, width=None) -> list[tf.TensorSpec]:
    """The named input specs of ``signature`` (``image`` then ``guidance``)."""
    return [
        tf.TensorSpec([batch, height, width, key.channels], tf.as_dtype(key.dtype), name=name)
        for name, key in signature.inputs.items()
    ]


def _check_in_range(x, hi, name):
    # NaN fails both comparisons, so this also rejects non-finite values.
    ok = tf.reduce_all(tf.logical_and(x >= 0, x <= tf.cast(hi, x.dtype)))
    return tf.debugging.Assert(
        ok, [f"{name}: values must be finite and lie in [0, {hi:g}]"], name=f"check_{name}_range"
    )


def checked_inputs(image, guidance, image_max=1.0):
    """Attach in-graph checks to ``image`` and ``guidance``; return them unchanged.

    Args:
        image: tensor (B, H, W, 3).
        guidance: tensor (B, H, W, 1), values in [0, 1].
        image_max: float. The image's largest allowed value. Defaults to `1.0`.

    Returns:
        ``(image, guidance)``, which depend on the checks, so the checks run first.
    """
    image_shape = tf.shape(image)
    guidance_shape = tf.shape(guidance)
    checks = [
        tf.debugging.assert_equal(
            image_shape[:3],
            guidance_shape[:3],
            message="guidance: batch, height and width must equal the image's",
            name="check_shapes_agree",
        ),
        tf.debugging.assert_greater(
            tf.reduce_prod(image_shape[:3]),
            0,
            message="image: is empty (batch, height or width is 0)",
            name="check_not_empty",
        ),
    ]
    with tf.control_dependencies(checks):
        checks += [
            _check_in_range(image, image_max, IMAGE_KEY),
            _check_in_range(guidance, 1.0, GUIDANCE_KEY),
        ]
    with tf.control_dependencies(checks):
        return tf.identity(image), tf.identity(guidance)


def to_uint8(x):
    """Float [0, 1] -> uint8 with the rounding of :func:`sagim_tf.utils.io.to_uint8`."""
    return tf.cast(tf.floor(tf.clip_by_value(x, 0.0, 1.0) * 255.0 + 0.5), tf.uint8)


def _endpoint(generator, signature: Signature, validate: bool):
    """The function of one signature: check, scale the image to [0, 1], run G, cast."""
    image_max = signature.inputs[IMAGE_KEY].max_value
    uint8_out = signature.outputs[OUTPUT_KEY].dtype == "uint8"

    def endpoint(image, guidance):
        if validate:
            image, guidance = checked_inputs(image, guidance, image_max=image_max)
        if image.dtype != tf.float32:
            image = tf.cast(image, tf.float32)
        if image_max != 1.0:
            image = image / image_max
        edited = generator([image, guidance], training=False)
        return {OUTPUT_KEY: to_uint8(edited) if uint8_out else edited}

    return endpoint


def build_archive(
    generator,
    validate=True,
    batch=None,
    height=None,
    width=None,
    signatures=tuple(SIGNATURES),
) -> keras.export.ExportArchive:
    """An :class:`ExportArchive` around ``generator`` with the named signatures.

    Args:
        generator: keras.Model. G, ``[image, guidance] -> edited``.
        validate: bool. Check the inputs in the graph; TFLite has no builtin ``Assert``, so
            the TFLite export passes `False`. Defaults to `True`.
        batch: int or None. A fixed batch size; None takes any. Defaults to `None`.
        height: int or None. A fixed height; None takes any. Defaults to `None`.
        width: int or None. A fixed width; None takes any. Defaults to `None`.
        signatures: sequence of str. Names from
            :data:`~sagim_tf.export.signatures.SIGNATURES`. Defaults to all of them.

    Raises:
        ConfigError: an unknown signature name.
    """
    chosen = [get_signature(name) for name in signatures]
    archive = keras.export.ExportArchive()
    archive.track(generator)
    for signature in chosen:
        archive.add_endpoint(
            signature.name,
            _endpoint(generator, signature, validate),
            input_signature=_specs(signature, batch, height, width),
        )
    return archive


def versions(base_path) -> list[int]:
    """Numeric version directories under ``base_path`` that hold a ``saved_model.pb``, sorted."""
    try:
        entries = os.listdir(base_path)
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        if entry.isdigit() and os.path.isfile(os.path.join(base_path, entry, "saved_model.pb")):
            found.append(int(entry))
    return sorted(found)


def next_version(base_path) -> int:
    """One more than the highest numeric directory under ``base_path`` (1 if there is none)."""
    if not os.path.isdir(base_path):
        return 1
    existing = [int(entry) for entry in os.listdir(base_path) if entry.isdigit()]
    return max(existing, default=0) + 1


def export_savedmodel(
    generator,
    out_dir,
    name: str = "sagim",
    version: int | None = None,
    overwrite: bool = False,
) -> str:
    """Write G as ``<out_dir>/<name>/<version>/`` for TF Serving; return that path.

    The version directory appears atomically (written under a hidden name, then renamed),
    so a server polling ``<out_dir>/<name>`` never loads a half-written version.

    Args:
        generator: keras.Model. G, ``[image, guidance] -> edited`` (load one with
            :func:`sagim_tf.models.loading.load_generator`).
        out_dir: str or path. The export root, e.g. ``export``.
        name: str. The model name (TF Serving's ``model_name``). Defaults to `"sagim"`.
        version: int or None. A positive version number; None takes one more than the
            highest present. Defaults to `None`.
        overwrite: bool. Replace an existing version directory instead of failing.
            Defaults to `False`.

    Raises:
        ConfigError: a bad name or version, or the version exists and ``overwrite`` is off.
        ExportError: TensorFlow cannot trace or write the model.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name or ""):
        raise ConfigError(f"model name {name!r}: use letters, digits, '_', '.', '-'")
    base = os.path.join(os.fspath(out_dir), name)
    os.makedirs(base, exist_ok=True)
    if version is None:
        version = next_version(base)
    if int(version) < 1:
        raise ConfigError(f"version must be a positive integer, got {version}")
    version = int(version)
    final = os.path.join(base, str(version))
    if os.path.exists(final) and not overwrite:
        raise ConfigError(f"{final} already exists; pass another --version or overwrite")
    tmp = tempfile.mkdtemp(dir=base, prefix=f".tmp-{version}-")
    try:
        try:
            build_archive(generator).write_out(tmp, verbose=False)
        except (TypeError, ValueError, tf.errors.OpError) as exc:
            raise ExportError(f"cannot export the model as a SavedModel: {exc}") from exc
        if os.path.exists(final):
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote SavedModel %s (signatures %s)", final, ", ".join(SIGNATURES))
    return final


def load_savedmodel(path):
    """``tf.saved_model.load`` with a clear error for a missing or broken directory.

    Args:
        path: str or path. A version directory, ``<out>/<name>/<version>``.

    Raises:
        InputError: no ``saved_model.pb`` there, or TensorFlow cannot load it.
    """
    path = os.fspath(path)
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise InputError(f"{path}: no saved_model.pb there (expected <base>/<name>/<version>/)")
    try:
        return tf.saved_model.load(path)
    except Exception as exc:
        raise InputError(
            f"{path}: cannot load the SavedModel ({type(exc).__name__}: {exc})"
        ) from exc


_CONFIG_TEMPLATE = """  config {{
    name: "{name}"
    base_path: "/models/{name}"
    model_platform: "tensorflow"
    model_version_policy {{ latest {{ num_versions: 1 }} }}
  }}
"""


def models_config_text(names) -> str:
    """A TF Serving ``model_config_list`` serving each model from ``/models/<name>``."""
    body = "".join(_CONFIG_TEMPLATE.format(name=n) for n in names)
    return f"model_config_list {{\n{body}}}\n"


def write_models_config(out_dir, name: str = "sagim") -> str:
    """Write (or extend) ``<out_dir>/models.config`` so that it lists ``name``; return its path.

    A config that already lists ``name`` is left as it is (it may have been edited by hand).

    Args:
        out_dir: str or path. The export root.
        name: str. The model name. Defaults to `"sagim"`.
    """
    path = os.path.join(os.fspath(out_dir), "models.config")
    names = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            names = re.findall(r'name:\s*"([^"]+)"', f.read())
    if name in names:
        return path
    names.append(name)
    write_text(path, models_config_text(names))
    log.info("TF Serving config %s lists %s", path, ", ".join(names))
    return path
