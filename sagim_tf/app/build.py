"""``sagim app build``: the phone editor as a static, self-contained folder.

The folder holds everything a browser needs to edit photos on the device, offline after
the first visit, with nothing fetched from elsewhere:

=========================  ===================================================================
path                       what
=========================  ===================================================================
``index.html``, ``app.css``  the page (sources in ``web/`` of the repository)
``js/*.js``                the editor's ES modules: the guidance rule, the operators, the UI
``sw.js``, ``manifest``    service worker (caches the files listed in ``precache.json``) and
                           the web-app manifest, so that the page installs and works offline
``vendor/@litertjs/...``   LiteRT.js (``@litertjs/core`` and ``@litertjs/wasm-utils``, pinned
                           in ``web/package-lock.json``, installed by ``npm ci --prefix web``)
``wasm/``                  LiteRT.js's WebAssembly runtime (the plain, the compatibility and
                           the multi-threaded build; the page picks one)
``models/g_<W>x<H>.tflite``  G at the working size, landscape and portrait: the ``fields``
                           signature for an operator-head G, ``serving_default`` otherwise
``models/e_<W>x<H>.tflite``  the estimator E at the same sizes
                           (:mod:`sagim_tf.app.estimator_tflite`)
``app.json``               sizes, file names, the operators' ranges and the guidance rule's
                           constants, read by the page
=========================  ===================================================================

The working size is G's: for an operator-head G its ``work_size`` on the longer side with a
4:3 aspect (256x192 for the default 256), for a residual-head G 256x192 (SalGAN's size, the
size it is trained at); ``size`` overrides it. A photo is shrunk to the working size of its
orientation for G and E (a 4:3 photo exactly; others are stretched a little, which the
smooth fields and residual absorb when they are enlarged back to the photo).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import shutil

from sagim_tf.app.estimator_tflite import SALIENCY_KEY, estimator_to_tflite
from sagim_tf.app.serve import CONFIG_NAME
from sagim_tf.estimators import build_estimator
from sagim_tf.export.signatures import FIELDS_KEY, GUIDANCE_KEY, IMAGE_KEY, OUTPUT_KEY
from sagim_tf.export.tflite import convert_to_tflite
from sagim_tf.guidance import (
    DEFAULT_LOWER_FACTOR,
    DEFAULT_RAISE_TO,
    DEFAULT_SIGMA_FRACTION,
    MIN_REFERENCE,
    REFERENCE_TOP_FRACTION,
)
from sagim_tf.layers.photo_operators import (
    DETAIL_KERNEL_SIZE,
    DETAIL_SIGMA,
    LUMA,
    OPERATOR_NAMES,
    OPERATOR_RANGES,
)
from sagim_tf.models.generate import has_operator_head
from sagim_tf.models.loading import check_generator_interface, load_model
from sagim_tf.utils.checks import parse_size
from sagim_tf.utils.errors import ConfigError, InputError
from sagim_tf.utils.io import atomic_write, write_json

log = logging.getLogger(__name__)

#: The repository's page sources (``web/``), next to the package in a clone.
WEB_DIR = pathlib.Path(__file__).resolve().parents[2] / "web"
#: The page's own files and folders copied from ``web/`` (node_modules and npm's files stay).
PAGE_FILES = (
    "index.html",
    "app.css",
    "sw.js",
    "manifest.webmanifest",
    "icon.svg",
    "icon-192.png",
    "icon-512.png",
    "js",
)
#: LiteRT.js's files: (package, file in the package, path in the build).
RUNTIME_FILES = (
    ("@litertjs/core", "dist/index.js", "vendor/@litertjs/core/index.js"),
    ("@litertjs/wasm-utils", "dist/index.js", "vendor/@litertjs/wasm-utils/index.js"),
    ("@litertjs/core", "wasm/litert_wasm_internal.js", "wasm/litert_wasm_internal.js"),
    ("@litertjs/core", "wasm/litert_wasm_internal.wasm", "wasm/litert_wasm_internal.wasm"),
    (
        "@litertjs/core",
        "wasm/litert_wasm_compat_internal.js",
        "wasm/litert_wasm_compat_internal.js",
    ),
    (
        "@litertjs/core",
        "wasm/litert_wasm_compat_internal.wasm",
        "wasm/litert_wasm_compat_internal.wasm",
    ),
    (
        "@litertjs/core",
        "wasm/litert_wasm_threaded_internal.js",
        "wasm/litert_wasm_threaded_internal.js",
    ),
    (
        "@litertjs/core",
        "wasm/litert_wasm_threaded_internal.wasm",
        "wasm/litert_wasm_threaded_internal.wasm",
    ),
)
#: The pinned LiteRT.js version (web/package.json); the build refuses another.
LITERT_VERSION = "2.5.3"
#: A residual-head G's working size (width, height): SalGAN's, the size G is trained at.
RESIDUAL_WORK_SIZE = (256, 192)
#: Photos above this many pixels are refused by the page ("too large for this device").
DEFAULT_MAX_MEGAPIXELS = 48.0


def work_size(generator, size=None) -> tuple[int, int]:
    """The landscape working size ``(width, height)`` of the app for G (see the module doc).

    Args:
        generator: keras.Model. G.
        size: tuple of two ints or None. ``(width, height)`` to use instead; the portrait
            size is its transpose. Defaults to `None`.
    """
    if size is not None:
        width, height = parse_size(size, "app working size", minimum=8)
        return (max(width, height), min(width, height))
    if has_operator_head(generator):
        longer = int(getattr(generator, "work_size", 256))
        return (longer, max(8, round(longer * 3 / 4)))
    return RESIDUAL_WORK_SIZE


def _node_package_dir(web_dir: pathlib.Path, package: str) -> pathlib.Path:
    path = web_dir / "node_modules" / package
    if not (path / "package.json").is_file():
        raise InputError(
            f"{path}: not installed; run `npm ci --prefix {web_dir}` first (LiteRT.js is "
            "pinned in web/package-lock.json)"
        )
    version = json.loads((path / "package.json").read_text(encoding="utf-8")).get("version")
    if version != LITERT_VERSION:
        raise InputError(
            f"{path}: version {version}, but the app is built and tested with "
            f"{LITERT_VERSION}; run `npm ci --prefix {web_dir}`"
        )
    return path


def _copy(src: pathlib.Path, dst: pathlib.Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, dirs_exist_ok=True)
    else:
        shutil.copyfile(src, dst)


def _write_bytes(path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def app_config(head: str, sizes, max_megapixels: float) -> dict:
    """The page's settings (``app.json``): what the JavaScript reads instead of constants."""
    return {
        "format": 1,
        "head": head,
        "sizes": sizes,
        "inputs": {"image": IMAGE_KEY, "guidance": GUIDANCE_KEY},
        "outputs": {"g": FIELDS_KEY if head == "operators" else OUTPUT_KEY, "e": SALIENCY_KEY},
        "operators": {
            "names": list(OPERATOR_NAMES),
            "ranges": [OPERATOR_RANGES[n] for n in OPERATOR_NAMES],
            "luma": list(LUMA),
            "detail_sigma": DETAIL_SIGMA,
            "detail_kernel_size": DETAIL_KERNEL_SIZE,
        },
        "guidance": {
            "raise_to": DEFAULT_RAISE_TO,
            "lower_factor": DEFAULT_LOWER_FACTOR,
            "sigma_fraction": DEFAULT_SIGMA_FRACTION,
            "top_fraction": REFERENCE_TOP_FRACTION,
            "min_reference": MIN_REFERENCE,
        },
        "limits": {"max_megapixels": float(max_megapixels)},
    }


def build_app(
    out_dir,
    generator,
    estimator,
    size=None,
    web_dir=None,
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
) -> dict:
    """Write the phone editor for G and E to ``out_dir`` (see the module docstring).

    Args:
        out_dir: str or path. The folder to write; files of an earlier build are replaced.
        generator: keras.Model. G (either head).
        estimator: keras.Model. E, image -> saliency map, convertible to TFLite.
        size: tuple of two ints or None. The working size; None takes G's
            (:func:`work_size`). Defaults to `None`.
        web_dir: str, path or None. The page sources with ``node_modules`` installed; None
            is the repository's ``web/``. Defaults to `None`.
        max_megapixels: float. The largest photo the page accepts. Defaults to `48.0`.

    Returns:
        The written ``app.json`` as a dict.

    Raises:
        InputError: the page sources or LiteRT.js are missing.
        ExportError: G or E has an op TFLite cannot run.
    """
    web = pathlib.Path(web_dir) if web_dir is not None else WEB_DIR
    if not (web / "index.html").is_file():
        raise InputError(
            f"{web}: no index.html; the page sources are in the repository's web/ folder "
            "(run from a clone, or pass the folder)"
        )
    if not max_megapixels > 0:
        raise ConfigError(f"max_megapixels must be > 0, got {max_megapixels!r}")
    packages = {p: _node_package_dir(web, p) for p in {f[0] for f in RUNTIME_FILES}}
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in PAGE_FILES:
        _copy(web / name, out / name)
    for package, inside, target in RUNTIME_FILES:
        _copy(packages[package] / inside, out / target)

    head = "operators" if has_operator_head(generator) else "residual"
    width, height = work_size(generator, size)
    sizes = []
    models = out / "models"
    models.mkdir(exist_ok=True)
    for w, h in ((width, height), (height, width)):
        if sizes and (w, h) == (sizes[0]["width"], sizes[0]["height"]):
            continue  # a square working size has one orientation
        g_name, e_name = f"models/g_{w}x{h}.tflite", f"models/e_{w}x{h}.tflite"
        g_bytes = convert_to_tflite(generator, input_size=(w, h), fields=head == "operators")
        e_bytes = estimator_to_tflite(estimator, (w, h))
        for name, data in ((g_name, g_bytes), (e_name, e_bytes)):
            atomic_write(os.fspath(out / name), lambda p, d=data: _write_bytes(p, d))
            log.info("wrote %s (%.1f MB)", out / name, len(data) / 1e6)
        sizes.append({"width": w, "height": h, "g": g_name, "e": e_name})

    config = app_config(head, sizes, max_megapixels)
    write_json(os.fspath(out / CONFIG_NAME), config)
    _write_precache(out)
    log.info("wrote the app to %s (%s head, working size %dx%d)", out, head, width, height)
    return config


def _write_precache(out: pathlib.Path) -> None:
    """``precache.json``: every file of the build and a version hashed from their contents.

    The version names the service worker's cache and is stamped into ``sw.js`` as its last
    line, so that a new build changes ``sw.js`` and browsers install the new worker (which
    drops the old cache).
    """
    files = sorted(
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and p.name not in ("precache.json", "sw.js")
    )
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode())
        digest.update(hashlib.sha256((out / name).read_bytes()).digest())
    version = digest.hexdigest()[:16]
    worker = out / "sw.js"
    worker.write_text(
        worker.read_text(encoding="utf-8").rstrip("\n") + f"\n// build {version}\n",
        encoding="utf-8",
    )
    write_json(
        os.fspath(out / "precache.json"),
        {"version": version, "files": ["./"] + sorted(files + ["sw.js"])},
    )


def build_app_from_file(
    model_path, out_dir, estimator_spec=None, size=None, web_dir=None, **kwargs
) -> dict:
    """:func:`build_app` for G and E of a ``.keras`` file.

    A SaGIM file brings its own E; a bare G file uses ``estimator_spec`` (default
    ``itti-koch``, as ``sagim edit`` does).
    """
    path = os.fspath(model_path)
    model = load_model(path, "model")
    generator = getattr(model, "generator", model)
    check_generator_interface(generator, path)
    if estimator_spec is not None:
        estimator = build_estimator(estimator_spec)
    else:
        estimator = getattr(model, "estimator", None) or build_estimator("itti-koch")
    return build_app(out_dir, generator, estimator, size=size, web_dir=web_dir, **kwargs)
