"""``sagim app``: build the phone editor (a static web app) and serve it.

``sagim app build --model M.keras --out export/web`` writes the app folder;
``sagim app serve --dir export/web [--port 8080] [--host 127.0.0.1]`` serves it. The two
actions share one flat set of flags (each action refuses the other's), so that
``sagim app --help`` lists them all.
"""

from __future__ import annotations

from sagim_tf.app.serve import DEFAULT_HOST, DEFAULT_PORT, is_loopback, make_server
from sagim_tf.utils.errors import ConfigError

NAME = "app"
HELP = "Build the on-device photo editor (a web app running G and E with LiteRT.js) or serve it."

DEFAULT_OUT = "export/web"
DEFAULT_MAX_MEGAPIXELS = 48.0  # sagim_tf.app.build's (tests/test_app_build.py checks)
#: The flags of each action (the others are refused for it).
BUILD_FLAGS = ("model", "out", "estimator", "size", "max_megapixels", "web")
SERVE_FLAGS = ("dir", "port", "host")


def add_arguments(parser):
    parser.add_argument(
        "action", choices=("build", "serve"), help="build: write the app; serve: serve it"
    )
    build = parser.add_argument_group("build")
    build.add_argument("--model", metavar="PATH", help=".keras file: a SaGIM or a bare G")
    build.add_argument("--out", metavar="DIR", help=f"folder to write (default: {DEFAULT_OUT})")
    build.add_argument(
        "--estimator",
        metavar="SPEC",
        help="E for the saliency maps (default: the SaGIM file's own E, itti-koch for a bare G)",
    )
    build.add_argument(
        "--size",
        type=int,
        nargs=2,
        metavar=("W", "H"),
        help="working size G and E run at (default: G's work size at 4:3)",
    )
    build.add_argument(
        "--max-megapixels",
        type=float,
        help=f"largest photo the page accepts (default: {DEFAULT_MAX_MEGAPIXELS:g})",
    )
    build.add_argument("--web", metavar="DIR", help="page sources (default: the repository's web/)")
    serve = parser.add_argument_group("serve")
    serve.add_argument("--dir", metavar="DIR", help=f"the built app (default: {DEFAULT_OUT})")
    serve.add_argument("--port", type=int, help=f"port (default: {DEFAULT_PORT})")
    serve.add_argument(
        "--host",
        help=f"interface to bind (default: {DEFAULT_HOST}; 0.0.0.0 to reach it from a phone)",
    )


def _refuse_others(args, allowed) -> None:
    given = [
        name
        for name in BUILD_FLAGS + SERVE_FLAGS
        if name not in allowed and getattr(args, name, None) is not None
    ]
    if given:
        flags = ", ".join("--" + n.replace("_", "-") for n in given)
        raise ConfigError(f"sagim app {args.action}: {flags} belong(s) to the other action")


def _build(args) -> int:
    from sagim_tf.app.build import build_app_from_file  # lazy: imports TensorFlow

    _refuse_others(args, BUILD_FLAGS)
    if args.model is None:
        raise ConfigError("sagim app build: --model PATH is required (a .keras file)")
    out = args.out or DEFAULT_OUT
    config = build_app_from_file(
        args.model,
        out,
        estimator_spec=args.estimator,
        size=tuple(args.size) if args.size else None,
        web_dir=args.web,
        max_megapixels=(
            DEFAULT_MAX_MEGAPIXELS if args.max_megapixels is None else args.max_megapixels
        ),
    )
    size = config["sizes"][0]
    print(
        f"wrote {out} ({config['head']} head, working size {size['width']}x{size['height']}); "
        f"serve it with: sagim app serve --dir {out}"
    )
    return 0


def _serve(args) -> int:
    _refuse_others(args, SERVE_FLAGS)
    directory = args.dir or DEFAULT_OUT
    host = args.host or DEFAULT_HOST
    server = make_server(directory, host, DEFAULT_PORT if args.port is None else args.port)
    port = server.server_address[1]
    if is_loopback(host):
        print(f"serving {directory} at http://127.0.0.1:{port}/ (Ctrl-C stops)", flush=True)
    else:
        # make_server has logged the warning about other devices on the network
        print(
            f"serving {directory} on {host}, port {port} (Ctrl-C stops); on the phone, open "
            f"http://<this computer's address>:{port}/",
            flush=True,
        )
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def run(args) -> int:
    return _build(args) if args.action == "build" else _serve(args)
