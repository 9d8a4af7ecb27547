"""``sagim app build`` and ``sagim app serve`` without a browser: the folder, E as TFLite,
the server, the command line, and the guidance rule's shared test vectors on the Python side."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

from sagim_tf.app import build as app_build
from sagim_tf.app.build import PAGE_FILES, build_app, work_size
from sagim_tf.app.estimator_tflite import estimator_to_tflite
from sagim_tf.app.serve import check_app_dir, is_loopback, make_server, serve_in_thread
from sagim_tf.cli import app as cli_app
from sagim_tf.cli import main
from sagim_tf.estimators import build_estimator
from sagim_tf.export.tflite import TFLiteRunner
from sagim_tf.guidance import guidance_from_boxes
from sagim_tf.layers.photo_operators import OPERATOR_NAMES, OPERATOR_RANGES
from sagim_tf.models.generate import predict_fields
from sagim_tf.utils.errors import ConfigError, InputError
from tests.app_helpers import (
    GUIDANCE_VECTORS,
    TEST_SIZE,
    brightness_estimator,
    require_build_inputs,
    unavailable,
)
from tests.export_helpers import tiny_operator_generator
from tests.helpers import tiny_sagim


@pytest.fixture(scope="module")
def operator_app(tmp_path_factory):
    require_build_inputs()
    out = tmp_path_factory.mktemp("app")
    config = build_app(out, tiny_operator_generator(), brightness_estimator(), size=TEST_SIZE)
    return out, config


def _run(interpreter_bytes, **inputs):
    runner = Interpreter(model_content=interpreter_bytes).get_signature_runner("serving_default")
    return runner(**inputs)


def test_build_writes_a_self_contained_folder(operator_app):
    out, config = operator_app
    for name in PAGE_FILES + ("app.json", "precache.json"):
        assert (out / name).exists(), name
    for name in (
        "vendor/@litertjs/core/index.js",
        "vendor/@litertjs/wasm-utils/index.js",
        "wasm/litert_wasm_internal.wasm",
        "wasm/litert_wasm_compat_internal.wasm",
    ):
        assert (out / name).is_file(), name
    assert config["head"] == "operators"
    assert [(s["width"], s["height"]) for s in config["sizes"]] == [(64, 48), (48, 64)]
    for size in config["sizes"]:
        assert (out / size["g"]).read_bytes()[4:8] == b"TFL3"
        assert (out / size["e"]).read_bytes()[4:8] == b"TFL3"
    assert config["operators"]["names"] == list(OPERATOR_NAMES)
    assert config["operators"]["ranges"] == [OPERATOR_RANGES[n] for n in OPERATOR_NAMES]
    assert json.loads((out / "app.json").read_text()) == config
    # nothing is fetched from elsewhere: the page names no other origin
    page = (out / "index.html").read_text() + "".join(
        p.read_text() for p in (out / "js").glob("*.js")
    )
    assert "http://" not in page and "https://" not in page and "cdn" not in page.lower()


def test_manifest_makes_the_app_installable(operator_app):
    out, _ = operator_app
    manifest = json.loads((out / "manifest.webmanifest").read_text())
    assert manifest["start_url"] == "./" and manifest["display"] == "standalone"
    sizes = set()
    for icon in manifest["icons"]:
        assert (out / icon["src"]).is_file(), icon["src"]
        if icon["type"] == "image/png":
            with Image.open(out / icon["src"]) as image:
                assert f"{image.size[0]}x{image.size[1]}" == icon["sizes"]
                sizes.add(icon["sizes"])
    assert {"192x192", "512x512"} <= sizes  # what browsers ask of an installable app


def test_precache_lists_every_file_and_stamps_the_worker(operator_app):
    out, _ = operator_app
    precache = json.loads((out / "precache.json").read_text())
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert set(precache["files"]) == (files - {"precache.json"}) | {"./"}
    assert (out / "sw.js").read_text().rstrip().endswith(f"// build {precache['version']}")


def test_fields_file_matches_the_python_runner(operator_app):
    out, config = operator_app
    size = config["sizes"][1]  # portrait
    runner = TFLiteRunner(out / size["g"])
    assert runner.signature == "fields" and runner.input_size == (48, 64)
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (64, 48, 3)).astype(np.float32)
    guidance = rng.uniform(0, 1, (64, 48, 1)).astype(np.float32)
    generator = tiny_operator_generator()
    # float32 TFLite against Keras: kernel order and fused ops differ in the last bits
    np.testing.assert_allclose(
        runner.fields(image, guidance), predict_fields(generator, image, guidance), atol=1e-4
    )


@pytest.mark.parametrize(
    "name, size",
    [("itti-koch", (64, 48)), ("itti-koch", (48, 64)), ("weighted", (64, 48))],
)
def test_estimator_as_tflite_matches_keras(name, size):
    # itti-koch: antialiased resizes; weighted: an E whose weights must reach the file
    estimator = brightness_estimator() if name == "weighted" else build_estimator(name)
    data = estimator_to_tflite(estimator, size)
    w, h = size
    image = np.random.default_rng(1).uniform(0, 1, (1, h, w, 3)).astype(np.float32)
    out = _run(data, image=image)["saliency"]
    # the antialiased resize as two matrix products: float32 sums in another order
    np.testing.assert_allclose(out, np.asarray(estimator(image)), atol=1e-4)


def test_work_size_follows_the_head():
    assert work_size(tiny_operator_generator()) == (64, 48)  # its work_size is 64
    assert work_size(object()) == app_build.RESIDUAL_WORK_SIZE
    assert work_size(object(), (48, 64)) == (64, 48)
    with pytest.raises(ConfigError):
        work_size(object(), (4, 4))


def test_build_needs_the_npm_packages(tmp_path):
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<!doctype html>")
    with pytest.raises(InputError, match="npm ci"):
        build_app(tmp_path / "out", tiny_operator_generator(), brightness_estimator(), web_dir=web)
    with pytest.raises(InputError, match="no index.html"):
        build_app(
            tmp_path / "out", tiny_operator_generator(), brightness_estimator(), web_dir=tmp_path
        )


def test_guidance_vectors_are_pythons_rule():
    """The shared vectors the page's JavaScript is tested against are Python's answers."""
    cases = json.loads(GUIDANCE_VECTORS.read_text())["cases"]
    assert len(cases) >= 5
    for case in cases:
        h, w = case["height"], case["width"]
        saliency = np.asarray(case["saliency"], np.float32).reshape(h, w)
        here = np.asarray(case["here"], bool).reshape(h, w)
        away = np.asarray(case["away"], bool).reshape(h, w)
        expected = guidance_from_boxes(
            saliency, [here] if here.any() else [], [away] if away.any() else []
        )[..., 0]
        # the file stores 7 decimals
        np.testing.assert_allclose(
            np.asarray(case["guidance"]).reshape(h, w), expected, atol=1e-6, err_msg=case["name"]
        )


# ----------------------------------------------------------------------------- serving
def test_server_serves_the_app_with_browser_content_types(operator_app):
    out, _ = operator_app
    server, url = serve_in_thread(out)
    try:
        for path, kind in (
            ("", "text/html"),
            ("js/main.js", "text/javascript"),
            ("wasm/litert_wasm_internal.wasm", "application/wasm"),
            ("manifest.webmanifest", "application/manifest+json"),
            ("app.json", "application/json"),
        ):
            with urllib.request.urlopen(url + path, timeout=10) as response:
                assert response.headers["Content-Type"].startswith(kind), path
                assert response.headers["Cache-Control"] == "no-cache"
    finally:
        server.shutdown()
        server.server_close()


def test_server_refuses_a_folder_that_is_not_an_app(tmp_path):
    with pytest.raises(InputError, match="not a built app"):
        check_app_dir(tmp_path)
    (tmp_path / "app.json").write_text("{}")
    with pytest.raises(ConfigError, match="port"):
        make_server(tmp_path, port=70000)


def test_server_warns_off_loopback(tmp_path, caplog):
    (tmp_path / "app.json").write_text("{}")
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0")
    with caplog.at_level(logging.WARNING, logger="sagim_tf.app.serve"):
        server = make_server(tmp_path, host="0.0.0.0", port=0)
        server.server_close()
    assert "every device" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sagim_tf.app.serve"):
        make_server(tmp_path, port=0).server_close()
    assert caplog.text == ""


# ----------------------------------------------------------------------------- the command line
def test_cli_defaults_agree_with_the_library():
    assert cli_app.DEFAULT_MAX_MEGAPIXELS == app_build.DEFAULT_MAX_MEGAPIXELS


def test_cli_refuses_missing_and_misplaced_flags(capsys):
    assert main(["app", "build"]) == 2
    assert "--model PATH is required" in capsys.readouterr().err
    assert main(["app", "serve", "--model", "m.keras"]) == 2
    assert "--model belong(s) to the other action" in capsys.readouterr().err


def test_cli_builds_from_a_keras_file(tmp_path, capsys):
    require_build_inputs()
    model = tiny_sagim()
    model.build()
    path = tmp_path / "sagim.keras"
    model.save(path)
    out = tmp_path / "web"
    assert (
        main(["app", "build", "--model", str(path), "--out", str(out), "--size", "48", "32"]) == 0
    )
    assert "sagim app serve --dir" in capsys.readouterr().out
    config = json.loads((out / "app.json").read_text())
    assert config["head"] == "residual"
    assert [(s["width"], s["height"]) for s in config["sizes"]] == [(48, 32), (32, 48)]


def test_cli_serves_until_stopped(operator_app):
    out, _ = operator_app
    process = subprocess.Popen(
        [sys.executable, "-m", "sagim_tf", "app", "serve", "--dir", str(out), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        with urllib.request.urlopen(url + "app.json", timeout=10) as response:
            assert json.loads(response.read())["head"] == "operators"
            assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_missing_browser_skips_locally_and_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true but no browser"):
        unavailable("no browser")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        unavailable("no browser")
