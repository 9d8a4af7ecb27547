"""G as a SavedModel for TF Serving, with explicitly named signatures.

Layout (what ``tensorflow_model_server --model_base_path=<out>/<name>`` expects)::

    <out>/models.config                 TF Serving model config (model_config_list)
    <out>/<name>/<version>/saved_model.pb, variables/

Signatures (any B, H and W):

``serving_default``
    inputs ``image`` float32 (B, H, W, 3) in [0, 1] and ``guidance`` float32 (B, H, W, 1)
    in [0, 1]; output ``edited`` float32 (B, H, W, 3) in [0, 1].
``edit_uint8``
    the same with ``image`` uint8 (B, H, W, 3) in [0, 255], for bandwidth; the output
    ``edited`` is uint8 too, ``floor(255 * edited + 0.5)`` (the rounding of
    :func:`sagim_tf.utils.io.to_uint8`), so both directions send a quarter of the bytes.

Both check their inputs inside the graph (batch, height and width of the two inputs agree,
neither is empty, values are finite and in range). A failed check is an
``InvalidArgumentError``, which TF Serving answers with gRPC ``INVALID_ARGUMENT``.
The checks cost one comparison pass over the inputs.

Keras 3 names the inputs of a plain ``model.export`` ``args_0``/``output_0``
(docs/method.md §4), so the signatures here are built with :class:`keras.export.ExportArchive`
and named :class:`tf.TensorSpec` endpoints that return dicts.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

import keras
import tensorflow as tf

from sagim_tf.utils.errors import ExportError
from sagim_tf.utils.errors import ConfigError, InputError

IMAGE_KEY = "image"
GUIDANCE_KEY = "guidance"
OUTPUT_KEY = "edited"
SIGNATURES = ("serving_default", "edit_uint8")


def _specs(image_dtype, batch=None, height=None, width=None):
    return [
        tf.TensorSpec([batch, height, width, 3], image_dtype, name=IMAGE_KEY),
        tf.TensorSpec([batch, height, width, 1], tf.float32, name=GUIDANCE_KEY),
    ]


def _check_in_range(x, hi, name):
    ok = tf.reduce_all(tf.logical_and(x >= 0, x <= hi))
    return tf.debugging.Assert(
        ok, [f"{name}: values must be finite and lie in [0, {hi:g}]"], name=f"check_{name}_range"
    )


def checked_inputs(image, guidance, image_max=1.0):
    """Attach in-graph checks to ``image`` and ``guidance``; return them unchanged."""
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


def build_archive(generator, validate=True, batch=None, height=None, width=None,
                  signatures=SIGNATURES) -> keras.export.ExportArchive:
    """An :class:`ExportArchive` around ``generator`` with the named signatures.

    ``validate=False`` leaves out the in-graph checks (TFLite has no builtin ``Assert``);
    ``batch``/``height``/``width`` fix the input shape (None: any).
    """
    unknown = set(signatures) - set(SIGNATURES)
    if unknown:
        raise ConfigError(f"unknown signature(s) {sorted(unknown)}; known: {list(SIGNATURES)}")
    archive = keras.export.ExportArchive()
    archive.track(generator)

    def serving_default(image, guidance):
        if validate:
            image, guidance = checked_inputs(image, guidance)
        return {OUTPUT_KEY: generator([image, guidance], training=False)}

    def edit_uint8(image, guidance):
        if validate:
            image, guidance = checked_inputs(image, guidance, image_max=255)
        image = tf.cast(image, tf.float32) / 255.0
        return {OUTPUT_KEY: to_uint8(generator([image, guidance], training=False))}

    fns = {"serving_default": (serving_default, tf.float32), "edit_uint8": (edit_uint8, tf.uint8)}
    for name in signatures:
        fn, dtype = fns[name]
        archive.add_endpoint(name, fn, input_signature=_specs(dtype, batch, height, width))
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
    """One more than the highest version under ``base_path`` (1 if there is none)."""
    existing = [int(e) for e in os.listdir(base_path) if e.isdigit()] if os.path.isdir(base_path) else []
    return max(existing, default=0) + 1


def export_savedmodel(generator, out_dir, name: str = "sagim", version: int | None = None,
                      overwrite: bool = False) -> str:
    """Write G as ``<out_dir>/<name>/<version>/`` for TF Serving; return that path.

    The version directory appears atomically (written under a hidden name, then renamed),
    so a server polling ``<out_dir>/<name>`` never loads a half-written version.

    Args:
        generator: G, a Keras model ``[image, guidance] -> edited``.
        out_dir: the export root (``export``).
        name: the model name (TF Serving's ``model_name``).
        version: a positive integer; default: one more than the highest present.
        overwrite: replace an existing version directory instead of failing.
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
    return final


def load_savedmodel(path):
    """``tf.saved_model.load`` with a clear error for a missing or broken directory."""
    path = os.fspath(path)
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise InputError(f"{path}: no saved_model.pb there (expected <base>/<name>/<version>/)")
    try:
        return tf.saved_model.load(path)
    except Exception as exc:
        raise InputError(f"{path}: cannot load the SavedModel ({type(exc).__name__}: {exc})") from exc


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
    """Write (or extend) ``<out_dir>/models.config`` so that it lists ``name``; return its path."""
    path = os.path.join(os.fspath(out_dir), "models.config")
    names = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            names = re.findall(r'name:\s*"([^"]+)"', f.read())
    if name in names:
        return path  # already listed: leave a hand-edited config alone
    names.append(name)
    text = models_config_text(names)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path
