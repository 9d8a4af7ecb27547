"""The phone app's numbers in headless Chromium: model load, edit, 12 MP apply, JS heap.

Builds the app (or takes a built one), serves it on 127.0.0.1, opens it in Debian's
Chromium (Playwright, ``/usr/bin/chromium``) and prints one JSON object:

* ``model_load_ms``: LiteRT.js's runtime plus G and E (both orientations) fetched and
  compiled, from the page's own clock;
* ``edit_ms``: one edit at the working size after the models have loaded: E of the photo,
  the guidance rule, G, and E of the edit (first run, then the median of the warm runs,
  where E's map of the photo is cached);
* ``full_apply_ms``: the edit applied to the 4032x3024 photo at full resolution in
  JavaScript (coefficients interpolated, the operators, or the residual enlarged);
* ``download_ms``: that apply plus the JPEG encode, as the Download button does it;
* ``js_heap_mb``: the page's JS heap after the download (DevTools ``JSHeapUsedSize``;
  typed arrays and LiteRT.js's WebAssembly memory live outside it), and ``page_memory_mb``,
  everything the page holds (``performance.measureUserAgentSpecificMemory``, which counts
  those too; null where the page is not cross-origin isolated).

Example::

    python scripts/bench_web.py                          # an untrained operator-head G
    python scripts/bench_web.py --model runs/demo/run/sagim.keras --repeats 5

Without ``--model`` the app is built from the default ``SaGIMGenerator(head="operators")``
(work size 256, random weights: time does not depend on their values; its zero-initialised
last layer gets random weights so that the fields are not all zero) and Itti-Koch as E.
Targets (issue 14): an edit at the working size under 1 s after the model has loaded, and
the 12 MP download under 3 s, on this CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

PHOTO_SIZE = (4032, 3024)  # width, height
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _build(out: str, model: str | None, head: str) -> dict:
    import numpy as np  # lazy: TensorFlow and the models load only when building

    from sagim_tf.app.build import build_app, build_app_from_file
    from sagim_tf.estimators import build_estimator
    from sagim_tf.models.generator import SaGIMGenerator

    if model:
        return build_app_from_file(model, out)
    generator = SaGIMGenerator(head=head)
    generator([np.zeros((1, 64, 64, 3), np.float32), np.zeros((1, 64, 64, 1), np.float32)])
    if head == "operators":
        layer = generator.get_layer("fields_coarse")
        rng = np.random.default_rng(0)
        layer.set_weights(
            [rng.normal(0, 0.05, w.shape).astype(np.float32) for w in layer.get_weights()]
        )
    return build_app(out, generator, build_estimator("itti-koch"))


def _photo(path: str) -> None:
    import numpy as np  # lazy: as above
    import skimage.data
    from PIL import Image

    img = Image.fromarray(np.asarray(skimage.data.astronaut())).resize(PHOTO_SIZE)
    img.save(path, quality=92)


def _paint(page) -> None:
    box = page.locator("#paint").bounding_box()
    for brush, (x0, y0, x1, y1) in (("here", (0.3, 0.3, 0.5, 0.4)), ("away", (0.7, 0.6, 0.9, 0.8))):
        page.locator(f'input[name="brush"][value="{brush}"]').check(force=True)
        page.mouse.move(box["x"] + x0 * box["width"], box["y"] + y0 * box["height"])
        page.mouse.down()
        for t in (0.25, 0.5, 0.75, 1.0):
            page.mouse.move(
                box["x"] + (x0 + (x1 - x0) * t) * box["width"],
                box["y"] + (y0 + (y1 - y0) * t) * box["height"],
            )
        page.mouse.up()


def _edit_ms(page) -> float:
    page.evaluate("window.sagimApp.lastRun = null")
    page.locator("#edit").click()
    page.wait_for_function(
        "window.sagimApp.lastRun || window.sagimApp.errors.length", timeout=120000
    )
    errors = page.evaluate("window.sagimApp.errors")
    if errors:
        raise SystemExit(f"the page reported: {errors[-1]}")
    return page.evaluate("window.sagimApp.timings")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help=".keras file (default: untrained G)")
    parser.add_argument(
        "--head", choices=("operators", "residual"), default="operators", help="untrained G's head"
    )
    parser.add_argument("--app", default=None, help="an already built app folder (skips the build)")
    parser.add_argument("--repeats", type=int, default=3, help="warm edits timed (default: 3)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the browser binary")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright  # lazy: the `app` extra

    from sagim_tf.app.serve import serve_in_thread

    with tempfile.TemporaryDirectory(prefix="sagim-bench-web-") as tmp:
        app = args.app or os.path.join(tmp, "web")
        config = _build(app, args.model, args.head) if args.app is None else None
        config = config or json.load(open(os.path.join(app, "app.json"), encoding="utf-8"))
        photo = os.path.join(tmp, "photo.jpg")
        _photo(photo)
        server, url = serve_in_thread(app)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium, args=FLAGS)
                context = browser.new_context(
                    viewport={"width": 390, "height": 844},
                    device_scale_factor=2,
                    accept_downloads=True,
                    service_workers="block",
                )
                page = context.new_page()
                cdp = context.new_cdp_session(page)
                page.goto(url)
                page.wait_for_function(
                    "window.sagimApp && (window.sagimApp.state.ready || window.sagimApp.errors.length)",
                    timeout=300000,
                )
                load_ms = page.evaluate("window.sagimApp.timings.modelLoadMs")
                page.set_input_files("#file", photo)
                page.wait_for_function("window.sagimApp.state.photo", timeout=120000)
                _paint(page)
                first = _edit_ms(page)["editMs"]
                runs = [_edit_ms(page) for _ in range(args.repeats)]
                warm = [r["editMs"] for r in runs]
                g_ms = statistics.median(r["gMs"] for r in runs)
                e_ms = statistics.median(r["eAfterMs"] for r in runs)
                full = page.evaluate("window.sagimApp.renderFull()")
                with page.expect_download(timeout=300000):
                    page.locator("#download").click()
                timings = page.evaluate("window.sagimApp.timings")
                # everything the page holds (JS heap, typed arrays, WebAssembly memory);
                # available where the page is cross-origin isolated
                page_bytes = page.evaluate(
                    "self.crossOriginIsolated && performance.measureUserAgentSpecificMemory ? "
                    "performance.measureUserAgentSpecificMemory().then((m) => m.bytes) : null"
                )
                cdp.send("Performance.enable")
                metrics = {
                    m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]
                }
                browser.close()
        finally:
            server.shutdown()
            server.server_close()
    size = config["sizes"][0]
    result = {
        "head": config["head"],
        "working_size": f"{size['width']}x{size['height']}",
        "photo": f"{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]}",
        "litert_threads": timings.get("threads"),
        "model_load_ms": round(load_ms, 1),
        "edit_ms": {
            "first": round(first, 1),
            "warm_median": round(statistics.median(warm), 1),
            "of_which_g_ms": round(g_ms, 1),
            "of_which_e_after_ms": round(e_ms, 1),
        },
        "preview_apply_ms": round(timings["previewMs"], 1),
        "full_apply_ms": round(full["ms"], 1),
        "download_ms": round(timings["downloadMs"], 1),
        "js_heap_mb": round(metrics.get("JSHeapUsedSize", float("nan")) / 2**20, 1),
        "js_heap_total_mb": round(metrics.get("JSHeapTotalSize", float("nan")) / 2**20, 1),
        "page_memory_mb": None if page_bytes is None else round(page_bytes / 2**20, 1),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
