"""G as a SavedModel for TF Serving, with explicitly named signatures.

Layout (what ``tensorflow_model_server --model_base_path=<out>/<name>`` expects)::

    <out>/models.config                 TF Serving model config (model_config_list)
    <out>/<name>/<version>/saved_model.pb, variables/

The signatures are described by the one table in :mod:`sagim_tf.export.signatures`;
each endpoint here is built from it. Every model gets ``serving_default`` (float32 in,
float32 out) and ``edit_uint8`` (uint8 image in, uint8 out); an operator-head G also gets
``fields`` (its raw operator fields), and a model exported with an estimator E that can be
traced also gets ``edit_masks`` (image, two masks and a strength in; E, the guidance rule
and the edit inside the graph, :mod:`sagim_tf.export.guidance_graph`).

All check their inputs inside the graph (batch, height and width of the map inputs agree,
the image is not empty, a strength is a scalar or one value per image, values are finite
and in range; ``edit_masks`` also wants at least one region per image). A failed check is
an ``InvalidArgumentError``, which TF Serving answers with gRPC ``INVALID_ARGUMENT``.
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

from sagim_tf.export.guidance_graph import (
    MASK_THRESHOLD,
    MaskEditor,
    traceable_resize,
)
from sagim_tf.export.signatures import (
    DEEMPHASIZE_KEY,
    EDIT_MASKS_SIGNATURE,
    EMPHASIZE_KEY,
    FIELDS_KEY,
    FIELDS_SIGNATURE,
    GUIDANCE_KEY,
    IMAGE_KEY,
    NEEDS_OPERATOR_HEAD,
    OUTPUT_KEY,
    STRENGTH_KEY,
    Signature,
    TensorKey,
    get_signature,
    signatures_for,
)
from sagim_tf.models.generate import has_operator_head
from sagim_tf.models.operator_head import field_model
from sagim_tf.utils.errors import ConfigError, ExportError, InputError, SagimError
from sagim_tf.utils.io import (
    fsync_dir,
    fsync_tree,
    is_stale_staging,
    remove_stale_staging,
    staging_prefix,
    write_text,
)

log = logging.getLogger(__name__)


def _spec(key: str, tensor: TensorKey, batch=None, height=None, width=None) -> tf.TensorSpec:
    dtype = tf.as_dtype(tensor.dtype)
    if tensor.is_map:
        return tf.TensorSpec([batch, height, width, tensor.channels], dtype, name=key)
    # a per-image value: a scalar or (B,), so the rank is left open
    return tf.TensorSpec(None if batch is None else [batch], dtype, name=key)


def _specs(signature: Signature, batch=None, height=None, width=None) -> list[tf.TensorSpec]:
    """The named input specs of ``signature``, in the table's order (``image`` first)."""
    return [_spec(key, tensor, batch, height, width) for key, tensor in signature.inputs.items()]


def _check_in_range(x, lo, hi, name):
    # NaN fails both comparisons, so this also rejects non-finite values.
    ok = tf.reduce_all(tf.logical_and(x >= tf.cast(lo, x.dtype), x <= tf.cast(hi, x.dtype)))
    return tf.debugging.Assert(
        ok,
        [f"{name}: values must be finite and lie in [{lo:g}, {hi:g}]"],
        name=f"check_{name}_range",
    )


def checked_inputs(signature: Signature, inputs: dict) -> dict:
    """Attach in-graph checks to a signature's ``inputs``; return them unchanged.

    Every map input must have the image's batch, height and width; a per-image value
    (``strength``) must be a scalar or hold one value per image; the image must not be
    empty; every value must be finite and in its range of the table.

    Args:
        signature: Signature. The table's entry the inputs belong to.
        inputs: dict of str to tensor. The inputs by key.

    Returns:
        A dict of the same tensors, which depend on the checks, so the checks run first.
    """
    image_shape = tf.shape(inputs[IMAGE_KEY])
    checks = [
        tf.debugging.assert_greater(
            tf.reduce_prod(image_shape[:3]),
            0,
            message="image: is empty (batch, height or width is 0)",
            name="check_not_empty",
        )
    ]
    for key, tensor in signature.inputs.items():
        if key == IMAGE_KEY:
            continue
        x = inputs[key]
        if tensor.is_map:
            checks.append(
                tf.debugging.assert_equal(
                    tf.shape(x)[:3],
                    image_shape[:3],
                    message=f"{key}: batch, height and width must equal the image's",
                    name=f"check_{key}_shape",
                )
            )
        else:
            count = tf.size(x)
            ok = tf.logical_and(
                tf.rank(x) <= 1,
                tf.logical_or(tf.equal(count, 1), tf.equal(count, image_shape[0])),
            )
            checks.append(
                tf.debugging.Assert(
                    ok,
                    [f"{key}: must be a scalar or hold one value per image, shape (B,)"],
                    name=f"check_{key}_shape",
                )
            )
    with tf.control_dependencies(checks):
        checks += [
            _check_in_range(inputs[key], tensor.min_value, tensor.max_value, key)
            for key, tensor in signature.inputs.items()
        ]
    with tf.control_dependencies(checks):
        return {key: tf.identity(x) for key, x in inputs.items()}


def to_uint8(x):
    """Float [0, 1] -> uint8 with the rounding of :func:`sagim_tf.utils.io.to_uint8`."""
    return tf.cast(tf.floor(tf.clip_by_value(x, 0.0, 1.0) * 255.0 + 0.5), tf.uint8)


def _edit_endpoint(generator, signature: Signature, validate: bool):
    """``serving_default`` / ``edit_uint8``: check, scale the image to [0, 1], run G, cast."""
    image_max = signature.inputs[IMAGE_KEY].max_value
    uint8_out = signature.outputs[OUTPUT_KEY].dtype == "uint8"

    def endpoint(image, guidance):
        if validate:
            checked = checked_inputs(signature, {IMAGE_KEY: image, GUIDANCE_KEY: guidance})
            image, guidance = checked[IMAGE_KEY], checked[GUIDANCE_KEY]
        if image.dtype != tf.float32:
            image = tf.cast(image, tf.float32)
        if image_max != 1.0:
            image = image / image_max
        edited = generator([image, guidance], training=False)
        return {OUTPUT_KEY: to_uint8(edited) if uint8_out else edited}

    return endpoint


def _fields_endpoint(generator, signature: Signature, validate: bool):
    """``fields``: check, run G's field model; raw fields (B, H, W, 7) in float32."""
    fields_model = field_model(generator)

    def endpoint(image, guidance):
        if validate:
            checked = checked_inputs(signature, {IMAGE_KEY: image, GUIDANCE_KEY: guidance})
            image, guidance = checked[IMAGE_KEY], checked[GUIDANCE_KEY]
        fields = fields_model([image, guidance], training=False)
        return {FIELDS_KEY: tf.cast(fields, tf.float32)}

    return endpoint


def _edit_masks_endpoint(generator, estimator, signature: Signature, validate: bool):
    """``edit_masks``: check, E's map, the guidance rule, the edit (guidance_graph)."""
    editor = MaskEditor(generator, estimator)

    def endpoint(image, emphasize, deemphasize, strength):
        inputs = {
            IMAGE_KEY: image,
            EMPHASIZE_KEY: emphasize,
            DEEMPHASIZE_KEY: deemphasize,
            STRENGTH_KEY: strength,
        }
        if validate:
            inputs = checked_inputs(signature, inputs)
            has_region = tf.logical_or(
                tf.reduce_any(inputs[EMPHASIZE_KEY] > MASK_THRESHOLD, axis=[1, 2, 3]),
                tf.reduce_any(inputs[DEEMPHASIZE_KEY] > MASK_THRESHOLD, axis=[1, 2, 3]),
            )
            region_check = tf.debugging.Assert(
                tf.reduce_all(has_region),
                [
                    "emphasize, deemphasize: an image has no region (no pixel above 0.5 in "
                    "either mask); give at least one region per image"
                ],
                name="check_regions",
            )
            with tf.control_dependencies([region_check]):
                inputs = {key: tf.identity(x) for key, x in inputs.items()}
        batch = tf.shape(inputs[IMAGE_KEY])[0]
        strength = tf.broadcast_to(tf.reshape(inputs[STRENGTH_KEY], [-1]), [batch])
        edited = editor(inputs[IMAGE_KEY], inputs[EMPHASIZE_KEY], inputs[DEEMPHASIZE_KEY], strength)
        return {OUTPUT_KEY: edited}

    return endpoint


def model_signatures(generator, estimator=None, operator_head=None) -> tuple[str, ...]:
    """The signatures a model exports: the edit ones, ``fields`` for an operator-head G,
    ``edit_masks`` when ``estimator`` is given (see
    :func:`~sagim_tf.export.signatures.signatures_for`).

    ``operator_head`` None asks :func:`~sagim_tf.models.generate.has_operator_head`.
    """
    if operator_head is None:
        operator_head = has_operator_head(generator)
    return signatures_for(operator_head, estimator is not None)


def build_archive(
    generator,
    validate=True,
    batch=None,
    height=None,
    width=None,
    signatures=None,
    estimator=None,
    operator_head=None,
) -> keras.export.ExportArchive:
    """An :class:`ExportArchive` around ``generator`` with the named signatures.

    Args:
        generator: keras.Model. G, ``[image, guidance] -> edited``.
        validate: bool. Check the inputs in the graph; TFLite has no builtin ``Assert``, so
            the TFLite export passes `False`. Defaults to `True`.
        batch: int or None. A fixed batch size; None takes any. Defaults to `None`.
        height: int or None. A fixed height; None takes any. Defaults to `None`.
        width: int or None. A fixed width; None takes any. Defaults to `None`.
        signatures: sequence of str or None. Names from
            :data:`~sagim_tf.export.signatures.SIGNATURES`; None takes every one the model
            offers (:func:`model_signatures`). Defaults to `None`.
        estimator: keras.Model or None. E, for ``edit_masks``. Defaults to `None`.
        operator_head: bool or None. Whether G has the operator head (its ``fields``
            layer); None asks G. The TFLite export passes True for its plain functional
            clone of an operator-head G. Defaults to `None`.

    Raises:
        ConfigError: an unknown signature name, or one the model cannot offer.
    """
    offered = model_signatures(generator, estimator, operator_head)
    if signatures is None:
        signatures = offered
    chosen = [get_signature(name) for name in signatures]
    for signature in chosen:
        if signature.name not in offered:
            why = (
                "an operator-head G (head='operators')"
                if NEEDS_OPERATOR_HEAD in signature.requires
                else "an estimator E (pass one)"
            )
            raise ConfigError(f"signature {signature.name!r} needs {why}")
    with traceable_resize():  # E's resizes to the input's size (see guidance_graph)
        endpoints = []  # built first: MaskEditor refuses an E that cannot be traced
        for signature in chosen:
            if signature.name == FIELDS_SIGNATURE:
                fn = _fields_endpoint(generator, signature, validate)
            elif signature.name == EDIT_MASKS_SIGNATURE:
                fn = _edit_masks_endpoint(generator, estimator, signature, validate)
            else:
                fn = _edit_endpoint(generator, signature, validate)
            endpoints.append((signature, fn))
        archive = keras.export.ExportArchive()
        archive.track(generator)
        if estimator is not None and EDIT_MASKS_SIGNATURE in signatures:
            archive.track(estimator)
        for signature, fn in endpoints:
            archive.add_endpoint(
                signature.name, fn, input_signature=_specs(signature, batch, height, width)
            )
    return archive


def versions(base_path) -> list[int]:
    """Numeric version directories under ``base_path`` that hold a ``saved_model.pb``, sorted.

    Hidden staging folders (``.tmp-*``, ``.old-*``) are never versions, whatever they hold.
    """
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


def clean_staging(base_path) -> list[str]:
    """Clear what killed exports left under ``base_path``; return the removed paths.

    A version moved aside by an overwrite (``.old-<N>-*``) whose export died before the
    new one took its place is first put back as ``<N>`` (it was published and checked);
    then every staging entry of a dead run is removed
    (:func:`~sagim_tf.utils.io.remove_stale_staging`: its process is gone, or it is older
    than :data:`~sagim_tf.utils.io.STALE_STAGING_HOURS`). A running export's are kept.
    """
    base_path = os.fspath(base_path)
    try:
        names = sorted(os.listdir(base_path))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for name in names:
        moved = re.match(r"\.old-(\d+)-", name)
        path = os.path.join(base_path, name)
        if not moved or not is_stale_staging(path):
            continue
        kept = os.path.join(path, "version")
        final = os.path.join(base_path, str(int(moved.group(1))))
        if os.path.isfile(os.path.join(kept, "saved_model.pb")) and not os.path.exists(final):
            try:
                os.rename(kept, final)
            except OSError as exc:
                log.warning("cannot put back %s as %s: %s", kept, final, exc)
            else:
                fsync_dir(base_path)
                log.warning(
                    "put back version %s under %s: an export replacing it was killed before "
                    "the new version took its place",
                    moved.group(1),
                    base_path,
                )
    return remove_stale_staging(base_path)


def _publishable_modes(path) -> None:
    """Give a tree written under ``mkdtemp`` (mode 0700) the usual modes: directories
    0777 and files 0666 less the umask (0755/0644 under the common umask 022), so that a
    TF Serving container running as another user can read the version."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o777 & ~umask)
    for root, dirs, files in os.walk(path):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o777 & ~umask)
        for f in files:
            os.chmod(os.path.join(root, f), 0o666 & ~umask)


def export_savedmodel(
    generator,
    out_dir,
    name: str = "sagim",
    version: int | None = None,
    overwrite: bool = False,
    estimator=None,
    check=None,
) -> str:
    """Write G as ``<out_dir>/<name>/<version>/`` for TF Serving; return that path.

    The version is written under a hidden name beside it
    (``<name>/.tmp-<version>-p<pid>@<host>-*``), given the usual modes (0755/0644 under
    umask 022), checked by ``check`` when one is given, synced to disk, and only then
    renamed to ``<version>``: a server polling ``<out_dir>/<name>`` never sees a
    half-written or unchecked version, and an export that fails or is killed leaves no
    version behind (at most a hidden ``.tmp-*`` folder, which no server loads, and which
    the next export removes: :func:`clean_staging`).

    Args:
        generator: keras.Model. G, ``[image, guidance] -> edited`` (load one with
            :func:`sagim_tf.models.loading.load_generator`).
        out_dir: str or path. The export root, e.g. ``export``.
        name: str. The model name (TF Serving's ``model_name``). Defaults to `"sagim"`.
        version: int or None. A positive version number; None takes one more than the
            highest present. Defaults to `None`.
        overwrite: bool. Replace an existing version directory instead of failing.
            Defaults to `False`.
        estimator: keras.Model or None. E, traced into the ``edit_masks`` signature; None
            exports without it. Defaults to `None`.
        check: callable or None. ``check(path)`` on the written, not yet published version
            (``sagim export`` runs the parity check of :mod:`sagim_tf.export.parity`); an
            exception from it publishes nothing. Defaults to `None`.

    Raises:
        ConfigError: a bad name or version, the version exists and ``overwrite`` is off, or
            ``estimator`` cannot run inside a graph.
        ExportError: TensorFlow cannot trace or write the model, or ``check`` refused it.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name or ""):
        raise ConfigError(f"model name {name!r}: use letters, digits, '_', '.', '-'")
    base = os.path.join(os.fspath(out_dir), name)
    os.makedirs(base, exist_ok=True)
    clean_staging(base)  # what killed exports left, before the next version is chosen
    if version is None:
        version = next_version(base)
    if int(version) < 1:
        raise ConfigError(f"version must be a positive integer, got {version}")
    version = int(version)
    final = os.path.join(base, str(version))
    if os.path.exists(final) and not overwrite:
        raise ConfigError(f"{final} already exists; pass another --version or overwrite")
    signatures = model_signatures(generator, estimator)
    tmp = tempfile.mkdtemp(dir=base, prefix=staging_prefix(str(version)))
    old = None
    try:
        try:
            with traceable_resize():  # in case writing traces E again
                build_archive(generator, estimator=estimator).write_out(tmp, verbose=False)
        except SagimError:  # our own checks (an estimator that cannot be traced) say why
            raise
        except (TypeError, ValueError, tf.errors.OpError) as exc:
            raise ExportError(f"cannot export the model as a SavedModel: {exc}") from exc
        _publishable_modes(tmp)
        if check is not None:
            try:
                check(tmp)
            except SagimError as exc:
                raise ExportError(
                    f"version {version} was not published under {base}: {exc}"
                ) from exc
        fsync_tree(tmp)  # a power loss after the rename must not publish empty files
        if os.path.exists(final):  # overwrite: move the old one aside, then swap in
            old = tempfile.mkdtemp(dir=base, prefix=staging_prefix(str(version), "old"))
            os.rename(final, os.path.join(old, "version"))
        try:
            os.rename(tmp, final)
        except OSError as exc:  # another export published this version meanwhile
            if old is not None and not os.path.exists(final):
                os.rename(os.path.join(old, "version"), final)
            raise ConfigError(f"{final} cannot be published: {exc}") from exc
        fsync_dir(base)
    finally:
        for leftover in (tmp, old):
            if leftover and os.path.exists(leftover):
                shutil.rmtree(leftover, ignore_errors=True)
    log.info("wrote SavedModel %s (signatures %s)", final, ", ".join(signatures))
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
    remove_stale_staging(os.fspath(out_dir))  # a killed write of this file left its temporary
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
