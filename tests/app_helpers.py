"""Helpers for the phone app's tests: tiny models, built apps, the browser and touch strokes.

The browser is Debian's Chromium (``/usr/bin/chromium``, or ``SAGIM_CHROMIUM``) driven by
Playwright for Python; Playwright's own browser download is never used. Without a browser
(or without Playwright) the browser tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import pathlib
import shutil

import keras
import numpy as np
import pytest
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
#: The guidance rule's shared test vectors (Python checks them, the page's JS too).
GUIDANCE_VECTORS = WEB / "test-vectors" / "guidance.json"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The working size the browser tests build their apps at (small: every test runs G and E).
TEST_SIZE = (64, 48)
PHONE = {"width": 390, "height": 844}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str):
    """Skip the test, or fail it under CI=true, where the browser tests must run."""
    if in_ci():
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def chromium_path() -> str | None:
    path = os.environ.get("SAGIM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return path if os.path.isfile(path) else None


def node_modules_ready() -> bool:
    return (WEB / "node_modules" / "@litertjs" / "core" / "package.json").is_file()


def require_build_inputs():
    if not node_modules_ready():
        unavailable("web/node_modules is missing (run `npm ci --prefix web`)")


def launch_browser(playwright):
    path = chromium_path()
    if path is None:
        unavailable("no Chromium at /usr/bin/chromium (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)


def phone_context(browser, **kwargs):
    """A browser context like a phone: 390x844, touch, mobile, device pixel ratio 2."""
    options = dict(
        viewport=PHONE,
        has_touch=True,
        is_mobile=True,
        device_scale_factor=2,
        accept_downloads=True,
    )
    options.update(kwargs)
    return browser.new_context(**options)


# ----------------------------------------------------------------------------- models
def brightness_estimator() -> keras.Model:
    """A stand-in E whose map rises with brightness: ``sigmoid(8 (mean(rgb) - 0.5))``."""
    inp = keras.Input((None, None, 3))
    out = keras.layers.Conv2D(
        1,
        1,
        activation="sigmoid",
        kernel_initializer=keras.initializers.Constant(8.0 / 3.0),
        bias_initializer=keras.initializers.Constant(-4.0),
    )(inp)
    model = keras.Model(inp, out, name="brightness_estimator")
    model.trainable = False
    return model


def brightening_generator() -> keras.Model:
    """A stand-in residual-head G that does what a trained one should, plainly:
    ``clip(image * (0.35 + 1.3 guidance), 0, 1)`` (brighter where the guide is high)."""
    image = keras.Input((None, None, 3), name="image")
    guidance = keras.Input((None, None, 1), name="guidance")
    gain = keras.layers.Rescaling(1.3, offset=0.35)(guidance)
    gain = keras.layers.Concatenate()([gain, gain, gain])
    edited = keras.layers.Multiply()([image, gain])
    edited = keras.layers.ReLU(max_value=1.0)(edited)
    return keras.Model([image, guidance], edited, name="brightening_generator")


def photo(width: int = 160, height: int = 120, seed: int = 0) -> np.ndarray:
    """A smooth test photo (uint8): colour gradients, a few soft blobs and mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = xx / width, yy / height
    img = np.stack([0.3 + 0.4 * u, 0.35 + 0.3 * v, 0.55 - 0.25 * u], -1)
    for cx, cy, r, c in ((0.3, 0.4, 0.12, (0.3, 0.2, 0.1)), (0.7, 0.65, 0.15, (-0.2, 0.1, 0.2))):
        blob = np.exp(-((u - cx) ** 2 + (v - cy) ** 2) / (2 * r * r))[..., None]
        img = img + blob * np.asarray(c, np.float32)
    img = img + rng.normal(0, 0.02, img.shape)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def save_photo(path, array) -> str:
    Image.fromarray(array).save(path)
    return os.fspath(path)


# ----------------------------------------------------------------------------- painting
def touch_stroke(page, cdp, points):
    """Drag one finger through ``points`` (page CSS pixels) with DevTools touch events,
    which Chromium turns into pointer events (``pointerType == "touch"``)."""
    (x0, y0), rest = points[0], points[1:]
    cdp.send(
        "Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x0, "y": y0}]}
    )
    for x, y in rest:
        cdp.send(
            "Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]}
        )
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def paint(page, cdp, brush: str, start, stop, steps: int = 10):
    """Choose ``brush`` (here, away, erase) and drag a finger from ``start`` to ``stop``,
    both as fractions (x, y) of the photo on screen."""
    page.locator(f'input[name="brush"][value="{brush}"]').check(force=True)
    box = page.locator("#paint").bounding_box()
    points = [
        (
            box["x"] + (start[0] + (stop[0] - start[0]) * t) * box["width"],
            box["y"] + (start[1] + (stop[1] - start[1]) * t) * box["height"],
        )
        for t in np.linspace(0.0, 1.0, steps)
    ]
    touch_stroke(page, cdp, points)


def open_app(page, url: str, timeout: float = 60000):
    """Load the app and wait until its models are loaded (or it reported an error)."""
    page.goto(url)
    page.wait_for_function(
        "window.sagimApp && (window.sagimApp.state.ready || window.sagimApp.errors.length)",
        timeout=timeout,
    )


def run_edit(page, timeout: float = 60000) -> dict:
    """Press Edit and return the page's record of the run (arrays as lists)."""
    page.evaluate("window.sagimApp.lastRun = null")
    page.locator("#edit").click()
    page.wait_for_function(
        "window.sagimApp.lastRun || (window.sagimApp.errors.length && !window.sagimApp.state.busy)",
        timeout=timeout,
    )
    return page.evaluate(
        """() => {
        const r = window.sagimApp.lastRun;
        if (!r) return {error: window.sagimApp.errors.at(-1)};
        const out = {};
        for (const [k, v] of Object.entries(r)) out[k] = ArrayBuffer.isView(v) ? Array.from(v) : v;
        return out;
    }"""
    )


def error_text(page) -> str:
    page.wait_for_selector("#error:not([hidden])", timeout=30000)
    return page.locator("#error-text").inner_text()
