"""The phone app in a real browser: Debian's Chromium, driven by Playwright, at 390x844
with touch. The page is built from tiny models (working size 64x48) and served locally.

What runs where is checked against Python: E's and G's TFLite files on LiteRT.js against
``ai_edge_litert`` (TFLiteRunner), the page's guidance rule against
``guidance_from_boxes`` and its operators against ``apply_fields``. Without Chromium or
Playwright these tests skip, except under ``CI=true`` (then they fail).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

from sagim_tf.app.build import build_app, build_app_from_file
from sagim_tf.app.serve import serve_in_thread
from sagim_tf.export.tflite import TFLiteRunner
from sagim_tf.guidance import blend_guidance, guidance_from_boxes
from sagim_tf.models.generate import apply_fields, scale_fields
from tests.app_helpers import (
    GUIDANCE_VECTORS,
    ROOT,
    TEST_SIZE,
    brightening_generator,
    brightness_estimator,
    error_text,
    launch_browser,
    open_app,
    paint,
    phone_context,
    photo,
    require_build_inputs,
    run_edit,
    save_photo,
    unavailable,
)
from tests.export_helpers import tiny_operator_generator

try:  # the `app` extra; without it the module's tests skip (fail under CI=true)
    from playwright.sync_api import sync_playwright
except ModuleNotFoundError:  # pragma: no cover - depends on the environment
    sync_playwright = None

SCREENSHOT = ROOT / "docs" / "images" / "app_phone.png"


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def browser():
    if sync_playwright is None:
        unavailable("Playwright for Python is not installed (pip install -e '.[app]')")
    require_build_inputs()
    with sync_playwright() as playwright:
        browser = launch_browser(playwright)
        yield browser
        browser.close()


def _built_and_served(tmp_path_factory, name, generator):
    """Build the app for ``generator`` (E: brightness) and serve it; yields (folder, url)."""
    out = tmp_path_factory.mktemp(name)
    build_app(out, generator, brightness_estimator(), size=TEST_SIZE)
    server, url = serve_in_thread(out)
    yield out, url
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def operator_app(tmp_path_factory, browser):
    yield from _built_and_served(tmp_path_factory, "operator-app", tiny_operator_generator())


@pytest.fixture(scope="module")
def residual_app(tmp_path_factory, browser):
    yield from _built_and_served(tmp_path_factory, "residual-app", brightening_generator())


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("photos") / "garden.png"
    return save_photo(path, photo(160, 120))


@pytest.fixture
def page(browser):
    context = phone_context(browser, service_workers="block")
    page = context.new_page()
    page.cdp = context.new_cdp_session(page)
    yield page
    context.close()


def _paint_both(page):
    paint(page, page.cdp, "here", (0.15, 0.3), (0.45, 0.35))
    paint(page, page.cdp, "away", (0.6, 0.7), (0.9, 0.75))


def _maps(run):
    h, w = run["height"], run["width"]
    arr = lambda key, c: np.asarray(run[key], np.float32).reshape(h, w, c)  # noqa: E731
    return h, w, arr


def _without_isolation(page, url):
    """Serve the page without the cross-origin isolation headers (as a phone on plain HTTP
    gets it), so that LiteRT.js runs its single-threaded build."""

    def strip(route):
        response = route.fetch()
        headers = {
            k: v for k, v in response.headers.items() if not k.lower().startswith("cross-origin")
        }
        route.fulfill(response=response, headers=headers)

    page.route(url, strip)


# ----------------------------------------------------------------------------- the edit
@pytest.mark.parametrize("threads", ["threaded", "single"])
def test_operator_edit_matches_python(page, operator_app, photo_file, threads):
    out, url = operator_app
    if threads == "single":
        _without_isolation(page, url)
    open_app(page, url)
    assert page.evaluate("window.sagimApp.state.ready"), page.evaluate("window.sagimApp.errors")
    cores = page.evaluate("Math.min(4, navigator.hardwareConcurrency)")
    expected_threads = cores if threads == "threaded" else 1
    assert page.evaluate("window.sagimApp.timings.threads") == expected_threads
    page.set_input_files("#file", photo_file)
    page.wait_for_function("window.sagimApp.state.photo")
    _paint_both(page)
    page.locator("#strength").fill("70")
    run = run_edit(page)
    assert "error" not in run, run
    h, w, arr = _maps(run)
    assert (w, h) == TEST_SIZE and run["head"] == "operators" and run["strength"] == 0.7
    small, saliency = arr("small", 3), arr("saliency", 1)
    here, away = arr("here", 1)[..., 0] > 0, arr("away", 1)[..., 0] > 0
    assert here.any() and away.any() and not (here & away).any()

    # E: LiteRT.js against ai_edge_litert on the same file and input
    e_file = out / "models" / f"e_{w}x{h}.tflite"
    e_runner = Interpreter(model_path=str(e_file)).get_signature_runner("serving_default")
    expected = e_runner(image=small[None])["saliency"][0]
    # two XNNPACK builds (wasm and x86): float32 sums in another order
    np.testing.assert_allclose(saliency, expected, atol=1e-5)

    # the guidance rule, JavaScript against Python, on the page's own map and strokes
    target = guidance_from_boxes(saliency, [here], [away])
    # float32 (Python) against float64 (JS) arithmetic, rounded to float32
    np.testing.assert_allclose(arr("target", 1), target, atol=1e-5)

    # G's fields: LiteRT.js against TFLiteRunner on the same input
    fields = TFLiteRunner(out / "models" / f"g_{w}x{h}.tflite").fields(small, arr("target", 1))
    # two XNNPACK builds: float32 sums in another order
    np.testing.assert_allclose(arr("output", 7), fields, atol=1e-4)

    # the operators at the working size: the page's JS against apply_fields
    edited = apply_fields(small, scale_fields(fields, 0.7))
    # tanh/exp in float64 (JS) against float32 (TF), and the fields' 1e-4 above
    np.testing.assert_allclose(arr("smallEdited", 3), edited, atol=2e-4)
    assert np.abs(edited - small).max() > 0.02  # the tiny G's fields do change the photo


def test_full_resolution_matches_apply_fields_and_downloads(page, operator_app, tmp_path):
    _, url = operator_app
    array = photo(203, 151, seed=3)  # not a multiple of the field grid
    path = save_photo(tmp_path / "odd.png", array)
    open_app(page, url)
    page.set_input_files("#file", path)
    page.wait_for_function("window.sagimApp.state.photo")
    _paint_both(page)
    run = run_edit(page)
    assert "error" not in run, run
    h, w, arr = _maps(run)
    pixels = page.evaluate(
        """async () => {
        const s = window.sagimApp.state;
        const c = await window.sagimApp.renderFull();
        return c;
    }"""
    )
    assert (pixels["width"], pixels["height"]) == (203, 151)
    full = page.evaluate(
        """async () => {
        const s = window.sagimApp.state;
        const src = {width: s.photo.width, height: s.photo.height, kind: "rgba8",
                     data: (() => { const c = new OffscreenCanvas(s.photo.width, s.photo.height);
                       const x = c.getContext("2d"); x.drawImage(s.photo.bitmap, 0, 0);
                       return x.getImageData(0, 0, c.width, c.height).data; })()};
        const dst = {width: src.width, height: src.height, kind: "rgba8",
                     data: new Uint8ClampedArray(src.data.length)};
        await s.result.edit(src, dst, {});
        return Array.from(dst.data);
    }"""
    )
    js = np.asarray(full, np.uint8).reshape(151, 203, 4)[..., :3]
    fields = np.asarray(run["output"], np.float32).reshape(h, w, 7)
    # the detail change is made on the working copy G saw, as sagim edit does
    expected = apply_fields(array, scale_fields(fields, 1.0), work_image=arr("small", 3))
    diff = np.abs(js.astype(int) - expected.astype(int))
    # uint8 rounding of float64 (JS) against float32 (NumPy) values: a rare 1-level step
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (diff.max(), (diff > 0).mean())

    with page.expect_download() as info:
        page.locator("#download").click()
    download = info.value
    assert download.suggested_filename == "odd-sagim.jpg"
    saved = tmp_path / "download.jpg"
    download.save_as(saved)
    with Image.open(saved) as image:
        assert image.size == (203, 151)
    assert page.evaluate("window.sagimApp.lastDownload")["width"] == 203


def test_saliency_rises_where_painted_here_and_falls_where_away(page, residual_app, tmp_path):
    out, url = residual_app
    path = save_photo(tmp_path / "photo.png", photo(160, 120, seed=5))
    open_app(page, url)
    page.set_input_files("#file", path)
    page.wait_for_function("window.sagimApp.state.photo")
    _paint_both(page)
    run = run_edit(page)
    assert "error" not in run, run
    h, w, arr = _maps(run)
    here, away = arr("here", 1)[..., 0] > 0, arr("away", 1)[..., 0] > 0
    before, after = arr("saliency", 1)[..., 0], arr("saliencyAfter", 1)[..., 0]
    assert after[here].mean() > before[here].mean() + 0.05
    assert after[away].mean() < before[away].mean() - 0.05

    # the residual head's output canvas against the Python TFLite runner, same guidance
    used = blend_guidance(arr("saliency", 1), arr("target", 1), 1.0)
    np.testing.assert_allclose(arr("guidance", 1), used, atol=1e-6)  # float32 vs float64 blend
    expected = TFLiteRunner(out / "models" / f"g_{w}x{h}.tflite").edit(arr("small", 3), used)
    # two XNNPACK builds: float32 sums in another order
    np.testing.assert_allclose(arr("output", 3), expected, atol=1e-5)

    # the overlays draw E's maps; the screenshot of the README when asked for
    page.locator('input[name="overlay"][value="after"]').check(force=True)
    page.locator('input[name="overlay"][value="none"]').check(force=True)
    if os.environ.get("SAGIM_SCREENSHOTS") == "1":
        _screenshot(page, url, out)


def _screenshot(page, url, app_dir):
    """The app at phone size after an edit of a real photograph (skimage's chelsea).

    With ``SAGIM_SCREENSHOT_MODEL=M.keras`` the app is built from that model (e.g. the
    demo's ``runs/demo/run/sagim.keras``); with ``SAGIM_SCREENSHOT_MODEL=DIR``, an app
    built earlier, its models and ``app.json`` are used with this checkout's page;
    otherwise the model is this test's stand-in.
    """
    import skimage.data  # lazy: only the screenshot uses a bundled photograph

    model = os.environ.get("SAGIM_SCREENSHOT_MODEL")
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        if model:
            app = os.path.join(tmp, "app")
            if os.path.isdir(model):
                shutil.copytree(app_dir, app)
                shutil.rmtree(os.path.join(app, "models"))
                shutil.copytree(os.path.join(model, "models"), os.path.join(app, "models"))
                shutil.copyfile(os.path.join(model, "app.json"), os.path.join(app, "app.json"))
            else:
                build_app_from_file(model, app)
            server, url = serve_in_thread(app)
            open_app(page, url)
        path = os.path.join(tmp, "chelsea.png")
        save_photo(path, skimage.data.chelsea())
        try:
            page.set_input_files("#file", path)
            page.wait_for_function("window.sagimApp.state.photo.name === 'chelsea.png'")
            paint(page, page.cdp, "here", (0.5, 0.3), (0.62, 0.42))
            paint(page, page.cdp, "here", (0.62, 0.3), (0.5, 0.45))
            paint(page, page.cdp, "away", (0.05, 0.15), (0.2, 0.85))
            paint(page, page.cdp, "away", (0.85, 0.1), (0.95, 0.9))
            run = run_edit(page)
            assert "error" not in run, run
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()


# ----------------------------------------------------------------------------- the rule in JS
def test_guidance_rule_matches_the_shared_vectors(page, operator_app):
    _, url = operator_app
    open_app(page, url)
    cases = json.loads(GUIDANCE_VECTORS.read_text())["cases"]
    results = page.evaluate(
        """async (cases) => {
        const g = await import("./js/guidance.js");
        return cases.map((c) => Array.from(g.guidanceFromMasks(
            Float32Array.from(c.saliency), Uint8Array.from(c.here), Uint8Array.from(c.away),
            c.width, c.height)));
    }""",
        cases,
    )
    for case, result in zip(cases, results):
        # float64 (JS) against float32 (Python), and the vectors' 7 decimals
        np.testing.assert_allclose(result, case["guidance"], atol=1e-5, err_msg=case["name"])
    message = page.evaluate(
        """async () => {
        const g = await import("./js/guidance.js");
        try { g.guidanceFromMasks(new Float32Array(4), new Uint8Array(4), new Uint8Array(4), 2, 2); }
        catch (e) { return e.message; }
    }"""
    )
    assert "Look here" in message


# ----------------------------------------------------------------------------- errors
def test_not_an_image_then_a_photo_still_opens(page, operator_app, photo_file):
    _, url = operator_app
    open_app(page, url)
    page.set_input_files(
        "#file", {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a photo"}
    )
    assert "is not an image" in error_text(page)
    page.set_input_files(
        "#file", {"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": b"\xff\xd8 junk"}
    )
    assert "could not be read as an image" in error_text(page)
    page.set_input_files("#file", photo_file)
    page.wait_for_function("window.sagimApp.state.photo && window.sagimApp.state.photo.width")
    assert page.locator("#error").is_hidden()
    assert not page.locator("#edit").is_disabled()


def test_photo_too_large_for_the_device(page, operator_app, photo_file):
    _, url = operator_app
    open_app(page, url)
    page.evaluate("window.sagimApp.state.limits.maxMegapixels = 0.01")
    page.set_input_files("#file", photo_file)
    text = error_text(page)
    assert "too large for this device" in text and "160×120" in text
    assert page.evaluate("window.sagimApp.state.photo") is None


def test_edit_without_strokes_asks_for_them(page, operator_app, photo_file):
    _, url = operator_app
    open_app(page, url)
    page.set_input_files("#file", photo_file)
    page.wait_for_function("window.sagimApp.state.photo")
    page.locator("#edit").click()
    assert "Look here" in error_text(page)


def test_model_that_fails_to_load(page, operator_app, photo_file):
    _, url = operator_app
    page.route("**/models/g_*.tflite", lambda route: route.fulfill(status=404, body="gone"))
    open_app(page, url)
    text = error_text(page)
    assert "could not be loaded" in text and "404" in text
    # the page keeps working: a photo opens, Edit stays off
    page.set_input_files("#file", photo_file)
    page.wait_for_function("window.sagimApp.state.photo")
    assert page.locator("#edit").is_disabled()


def test_browser_without_webassembly(browser, operator_app):
    _, url = operator_app
    context = phone_context(browser, service_workers="block")
    try:
        page = context.new_page()
        page.add_init_script("delete globalThis.WebAssembly")
        page.goto(url)
        assert "cannot run WebAssembly" in error_text(page)
    finally:
        context.close()


# ----------------------------------------------------------------------------- phone details
def test_exif_orientation_is_honoured_and_portrait_edits(page, operator_app, tmp_path):
    _, url = operator_app
    image = Image.fromarray(photo(80, 60))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes())
    open_app(page, url)
    page.set_input_files("#file", str(path))
    page.wait_for_function("window.sagimApp.state.photo")
    size = page.evaluate("[window.sagimApp.state.photo.width, window.sagimApp.state.photo.height]")
    assert size == [60, 80]
    _paint_both(page)  # a portrait photo runs the portrait models
    run = run_edit(page)
    assert "error" not in run, run
    assert (run["width"], run["height"]) == TEST_SIZE[::-1]


def test_phone_layout_fits_and_holds_still(page, operator_app, photo_file):
    _, url = operator_app
    open_app(page, url)
    page.set_input_files("#file", photo_file)
    page.wait_for_function("window.sagimApp.state.photo")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.evaluate("document.documentElement.scrollHeight") <= 844
    for selector in ("#edit", "#download", "#undo", "label[for=file]"):
        assert page.locator(selector).bounding_box()["height"] >= 44, selector
    _paint_both(page)
    boxes = lambda: [page.locator(s).bounding_box() for s in ("#frame", "#tools", "#edit")]  # noqa: E731
    before = boxes()
    page.evaluate("document.querySelector('#edit').click()")
    during = boxes()
    page.wait_for_function("window.sagimApp.lastRun")
    assert before == during == boxes()


def test_undo_removes_the_last_stroke(page, operator_app, photo_file):
    _, url = operator_app
    open_app(page, url)
    page.set_input_files("#file", photo_file)
    page.wait_for_function("window.sagimApp.state.photo")
    _paint_both(page)
    assert page.evaluate("window.sagimApp.state.strokes.map(s => s.mode)") == ["here", "away"]
    page.locator("#undo").click()
    assert page.evaluate("window.sagimApp.state.strokes.map(s => s.mode)") == ["here"]


def test_works_offline_after_the_first_visit(browser, operator_app):
    _, url = operator_app
    context = phone_context(browser)
    try:
        page = context.new_page()
        open_app(page, url)
        page.wait_for_function(
            "navigator.serviceWorker.controller !== null || "
            "navigator.serviceWorker.ready.then(() => true)",
            timeout=30000,
        )
        page.evaluate("navigator.serviceWorker.ready")
        page.reload()  # now controlled by the worker, which has cached every file
        open_app(page, url)
        context.set_offline(True)
        page.reload()
        open_app(page, url)
        assert page.evaluate("window.sagimApp.state.ready"), page.evaluate("window.sagimApp.errors")
    finally:
        context.close()


def test_screenshot_is_a_png_of_phone_size():
    """The committed screenshot (docs/images/app_phone.png) is a phone-size PNG."""
    with Image.open(SCREENSHOT) as image:
        assert image.format == "PNG" and image.size == (780, 1688)


def test_hold_shows_the_original_and_overlays_draw(page, operator_app, photo_file):
    _, url = operator_app
    open_app(page, url)
    page.set_input_files("#file", photo_file)
    page.wait_for_function("window.sagimApp.state.photo")
    view_sum = """() => { const c = document.querySelector('#view');
        return c.getContext('2d').getImageData(0, 0, c.width, c.height).data
            .reduce((a, v) => a + v, 0); }"""
    original = page.evaluate(view_sum)
    _paint_both(page)
    run_edit(page)
    # the views are drawn from decoded bitmaps, a moment after the edit or the press
    page.wait_for_function(f"({view_sum})() !== {original}")
    edited = page.evaluate(view_sum)
    box = page.locator("#compare").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.wait_for_function(f"({view_sum})() === {original}", timeout=5000)
    assert "comparing" in page.locator("#frame").get_attribute("class")
    page.mouse.up()
    page.wait_for_function(f"({view_sum})() === {edited}", timeout=5000)
    heat_alpha = """() => { const c = document.querySelector('#heat');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let s = 0; for (let i = 3; i < d.length; i += 4) s += d[i]; return s; }"""
    for overlay in ("guidance", "before", "after"):
        page.locator(f'input[name="overlay"][value="{overlay}"]').check(force=True)
        assert page.evaluate(heat_alpha) > 0, overlay
    page.locator('input[name="overlay"][value="none"]').check(force=True)
    assert page.evaluate(heat_alpha) == 0


def test_new_strength_redoes_the_edit(page, operator_app, photo_file):
    _, url = operator_app
    open_app(page, url)
    page.set_input_files("#file", photo_file)
    page.wait_for_function("window.sagimApp.state.photo")
    _paint_both(page)
    assert run_edit(page)["strength"] == 1.0
    page.evaluate("window.sagimApp.lastRun = null")
    page.locator("#strength").fill("30")  # input, then change: the slider let go
    page.wait_for_function("window.sagimApp.lastRun && !window.sagimApp.state.busy")
    assert page.evaluate("window.sagimApp.lastRun.strength") == 0.3
    assert page.locator("#strength-value").inner_text() == "30%"


def test_eraser_removes_paint(page, operator_app, photo_file):
    _, url = operator_app
    open_app(page, url)
    page.set_input_files("#file", photo_file)
    page.wait_for_function("window.sagimApp.state.photo")
    page.locator("#size").fill("20")
    paint(page, page.cdp, "here", (0.2, 0.5), (0.8, 0.5))
    page.locator("#size").fill("80")  # a wider eraser over the whole stroke
    paint(page, page.cdp, "erase", (0.1, 0.5), (0.9, 0.5), steps=20)
    page.locator("#edit").click()
    assert "Look here" in error_text(page)  # nothing painted is left
