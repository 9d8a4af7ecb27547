"""``sagim app serve``: a small static file server for a built app folder.

It serves the folder written by :func:`sagim_tf.app.build.build_app` with the content types
a browser insists on (``application/wasm`` for WebAssembly, ``text/javascript`` for ES
modules, ``application/manifest+json`` for the manifest) and ``Cache-Control: no-cache``,
so that a rebuilt app is picked up (the page's service worker keeps its own offline copy),
and the two cross-origin isolation headers (``Cross-Origin-Opener-Policy: same-origin``,
``Cross-Origin-Embedder-Policy: require-corp``) under which the page may run LiteRT.js's
multi-threaded runtime.

It binds to 127.0.0.1 by default: only this computer can open the page. To open it from a
phone on the same network, bind to ``0.0.0.0`` (every interface): then anyone on that
network can fetch the app and its models, so :func:`serve` logs a warning. Plain HTTP from
another machine is not a "secure context", so there the browser runs the editor but
installs no service worker (no offline use, no install); see docs/app.md for HTTPS.
"""

from __future__ import annotations

import functools
import http.server
import ipaddress
import logging
import os
import socket
import threading

from sagim_tf.utils.errors import ConfigError, InputError

log = logging.getLogger(__name__)

#: The app's settings file, written by the build; a folder without it is not an app.
CONFIG_NAME = "app.json"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
#: Content types by file extension; browsers refuse wasm and modules served as anything else.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".wasm": "application/wasm",
    ".tflite": "application/octet-stream",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".map": "application/json",
}


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = dict(http.server.SimpleHTTPRequestHandler.extensions_map, **CONTENT_TYPES)

    def end_headers(self):
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        # cross-origin isolation: lets the page use LiteRT.js's threaded runtime (the app
        # loads nothing from another origin, so nothing is blocked by these)
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        log.debug("%s %s", self.address_string(), format % args)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only."""
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
        except OSError:
            return False


def check_app_dir(directory) -> str:
    """The app folder as an absolute path; a folder without ``app.json`` is an InputError."""
    path = os.path.abspath(os.fspath(directory))
    if not os.path.isfile(os.path.join(path, CONFIG_NAME)):
        raise InputError(
            f"{path}: not a built app (no {CONFIG_NAME}); run `sagim app build --model "
            f"M.keras --out {directory}` first"
        )
    return path


def make_server(directory, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT):
    """A ``ThreadingHTTPServer`` serving ``directory`` (not started); port 0 picks a free one.

    Raises:
        InputError: the folder is not a built app.
        ConfigError: a bad port, or the address cannot be bound (named).
    """
    path = check_app_dir(directory)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"port must be an integer in 0..65535, got {port!r}")
    if not is_loopback(host):
        log.warning(
            "serving on %s: every device that can reach this address on your network can "
            "open the app and download its models; use 127.0.0.1 unless you mean to open it "
            "from a phone",
            host,
        )
    handler = functools.partial(_Handler, directory=path)
    try:
        server = http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise ConfigError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from exc
    server.daemon_threads = True
    return server


def serve_in_thread(directory, host: str = DEFAULT_HOST, port: int = 0):
    """Start :func:`make_server` in a daemon thread; returns ``(server, url)``.

    Stop it with ``server.shutdown(); server.server_close()``.
    """
    server = make_server(directory, host, port)
    thread = threading.Thread(target=server.serve_forever, name="sagim-app", daemon=True)
    thread.start()
    bound_host, bound_port = server.server_address[:2]
    return server, f"http://{bound_host}:{bound_port}/"
