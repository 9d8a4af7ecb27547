"""``sagim serve``: our own gRPC PredictionService for exported SaGIM SavedModels.

Safe by default: it binds 127.0.0.1 (``--host 0.0.0.0`` opens it to the network, with a
warning), refuses a port already in use, and speaks TLS with ``--ssl-cert/--ssl-key``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from sagim_tf.utils.errors import SagimError

NAME = "serve"
# The same values as sagim_tf.serving.options (tests/test_serving_grpc.py checks), written
# out so that `--help` does not import gRPC and TensorFlow.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_PIXELS = 4 * 2**20
DEFAULT_LARGE_PIXELS = 2**20
HELP = "Serve an exported SavedModel over gRPC (TF Serving's PredictionService API)."


def add_arguments(parser):
    parser.add_argument(
        "--model-base-path",
        required=True,
        metavar="DIR",
        help="export/<name>, holding numeric version directories",
    )
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (default: 8500)")
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"interface to bind; 0.0.0.0 opens the server to the network (default: "
        f"{DEFAULT_HOST}, this machine only)",
    )
    parser.add_argument(
        "--ssl-cert",
        default=None,
        metavar="PEM",
        help="serve TLS with this certificate (chain); needs --ssl-key",
    )
    parser.add_argument(
        "--ssl-key", default=None, metavar="PEM", help="the private key of --ssl-cert"
    )
    parser.add_argument(
        "--model-name",
        default=None,
        help="name clients ask for (default: the base path's last component)",
    )
    parser.add_argument("--max-workers", type=int, default=16, help="RPC threads (default: 16)")
    parser.add_argument(
        "--max-concurrent", type=int, default=2, help="inferences running at once (default: 2)"
    )
    parser.add_argument(
        "--max-queued",
        type=int,
        default=128,
        help="RPCs accepted at once; more get RESOURCE_EXHAUSTED (default: 128)",
    )
    parser.add_argument(
        "--max-request-mb",
        type=float,
        default=128,
        help="largest request accepted, in MB (default: 128)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help="largest batch*height*width a request may declare, checked before anything is "
        "allocated (default: 4 Mi, 2048x2048)",
    )
    parser.add_argument(
        "--large-pixels",
        type=int,
        default=DEFAULT_LARGE_PIXELS,
        help="a request over this batch*height*width is large (default: 1 Mi, 1024x1024)",
    )
    parser.add_argument(
        "--max-large",
        type=int,
        default=1,
        help="large requests running at once; one more gets RESOURCE_EXHAUSTED at once "
        "instead of delaying small ones (default: 1)",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=2.0,
        help="seconds between looks for a new version; 0 turns it off (default: 2)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=5.0,
        help="seconds in-flight requests get on shutdown (default: 5)",
    )


def run(args) -> int:
    try:  # lazy: grpc and tensorflow-serving-api (the `serving` extra) load only when serving
        from sagim_tf.serving import SagimServer
    except ModuleNotFoundError as exc:
        raise SagimError(str(exc)) from exc  # names the pip command; no traceback

    base = os.path.abspath(args.model_base_path)
    name = args.model_name or os.path.basename(base.rstrip(os.sep))
    server = SagimServer(
        base,
        port=args.port,
        host=args.host,
        model_name=name,
        max_workers=args.max_workers,
        max_concurrent=args.max_concurrent,
        max_queued=args.max_queued,
        max_request_mb=args.max_request_mb,
        max_pixels=args.max_pixels,
        poll_interval=args.poll_interval,
        large_pixels=args.large_pixels,
        max_large=args.max_large,
        ssl_cert=args.ssl_cert,
        ssl_key=args.ssl_key,
    )
    stop = threading.Event()

    def on_signal(signum, _frame):
        print(
            f"sagim serve: {signal.Signals(signum).name}, stopping (grace {args.grace:g} s)",
            flush=True,
        )
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        port = server.start(warn=False)  # printed below instead
        if server.exposure_warning:
            print(f"sagim serve: warning: {server.exposure_warning}", file=sys.stderr, flush=True)
        signatures = ", ".join(server.manager.model.signatures)
        tls = ", TLS" if server.tls else ""
        print(
            f"sagim serve: model '{name}' version {server.version} from {base} "
            f"listening on {args.host}:{port}{tls} (signatures: {signatures})",
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        server.stop(grace=args.grace)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("sagim serve: stopped", flush=True)
    return 0
