"""Load test of ``sagim serve`` on loopback, with a version hot-swap in the middle.

Exports a small G as version 1 (and another G as version 2 into a staging folder), starts
``sagim serve`` in its own process, warms it up at full concurrency, sends ``--requests``
Predict calls from ``--concurrency`` threads and, once ``--swap-at`` of them are answered,
publishes version 2 with one rename (what ``sagim export`` does last), which the server
picks up while the load runs.
Prints one JSON object: throughput, latency percentiles, answers by gRPC status, the
versions that answered, and the server's RSS after warm-up and at the end. Example::

    python scripts/bench_serving.py                               # 2,000 at 32, 128x96
    python scripts/bench_serving.py --size 256x192 --large-fraction 0.05 --large-size 1280x960

The target (issue 15): no error besides RESOURCE_EXHAUSTED back-pressure (which only
``--large-fraction`` provokes: large requests beyond ``--max-large`` are refused at once),
and server RSS growth under 10 %.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, ROOT)

import grpc  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from tensorflow_serving.apis import predict_pb2  # noqa: E402

from sagim_tf.export import export_savedmodel  # noqa: E402
from sagim_tf.models.generator import SaGIMGenerator  # noqa: E402
from sagim_tf.serving import SagimServingClient  # noqa: E402
from sagim_tf.serving.tensors import to_tensor_proto  # noqa: E402


def _size(text):
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def _generator(seed, base_filters, depth):
    keras.utils.set_random_seed(seed)
    g = SaGIMGenerator(base_filters=base_filters, depth=depth, num_residual_blocks=1)
    g([np.zeros((1, 8, 8, 3), np.float32), np.zeros((1, 8, 8, 1), np.float32)])
    return g


def _rss_mb(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(width, height, seed):
    rng = np.random.default_rng(seed)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "sagim"
    request.model_spec.signature_name = "serving_default"
    image = rng.uniform(0, 1, (1, height, width, 3)).astype(np.float32)
    guidance = rng.uniform(0, 1, (1, height, width, 1)).astype(np.float32)
    request.inputs["image"].CopyFrom(to_tensor_proto(image))
    request.inputs["guidance"].CopyFrom(to_tensor_proto(guidance))
    return request


def _percentile(values, q):
    return round(float(np.percentile(values, q)), 2) if values else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--size", default="128x96", help="WxH of each request (default 128x96)")
    parser.add_argument(
        "--large-fraction",
        type=float,
        default=0.0,
        help="share of requests at --large-size, to show back-pressure (default 0)",
    )
    parser.add_argument("--large-size", default="1280x960", help="WxH of a large request")
    parser.add_argument("--base-filters", type=int, default=8, help="G's width (default 8)")
    parser.add_argument("--depth", type=int, default=2, help="G's depth (default 2)")
    parser.add_argument("--max-concurrent", type=int, default=2)
    parser.add_argument("--max-large", type=int, default=1)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument(
        "--warmup", type=int, default=200, help="requests (at full concurrency) before RSS"
    )
    parser.add_argument(
        "--swap-at",
        type=float,
        default=0.5,
        help="publish version 2 once this share of requests is answered; 0: no swap",
    )
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    width, height = _size(args.size)
    large_w, large_h = _size(args.large_size)

    work = tempfile.mkdtemp(prefix="bench_serving_")
    g1 = _generator(1, args.base_filters, args.depth)
    export_savedmodel(g1, work, name="sagim", version=1)
    staging = os.path.join(work, ".staging")
    staged = export_savedmodel(
        _generator(2, args.base_filters, args.depth), staging, name="sagim", version=2
    )
    port = _free_port()
    log_path = os.path.join(work, "serve.log")
    log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "sagim_tf", "serve", "--model-base-path"]
        + [os.path.join(work, "sagim"), "--port", str(port)]
        + ["--poll-interval", str(args.poll_interval)]
        + ["--max-concurrent", str(args.max_concurrent), "--max-large", str(args.max_large)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        client = SagimServingClient("127.0.0.1", port, timeout=120)
        client.wait_ready(180)
        small = [_request(width, height, seed) for seed in range(16)]
        large = _request(large_w, large_h, 99) if args.large_fraction > 0 else None
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            list(
                pool.map(
                    lambda i: client.stub.Predict(small[i % len(small)], timeout=120),
                    range(args.warmup),
                )
            )
        rss_before = _rss_mb(server.pid)

        rng = np.random.default_rng(0)
        is_large = rng.uniform(size=args.requests) < args.large_fraction
        lock = threading.Lock()
        results = []  # (latency s, status name, version, large)
        done = threading.Event()
        half = int(args.requests * args.swap_at) if args.swap_at > 0 else -1
        swap = {}

        def one(i):
            request = large if is_large[i] else small[i % len(small)]
            start = time.perf_counter()
            try:
                response = client.stub.Predict(request, timeout=120)
                status, version = "OK", int(response.model_spec.version.value)
            except grpc.RpcError as exc:
                status, version = exc.code().name, None
            elapsed = time.perf_counter() - start
            with lock:
                results.append((elapsed, status, version, bool(is_large[i])))
                if len(results) == half:
                    done.set()

        def hot_swap():
            if done.wait(timeout=3600) and half >= 0:
                os.rename(staged, os.path.join(work, "sagim", "2"))
                swap["published_s"] = round(time.perf_counter() - t0, 2)
                swap["published_after_answers"] = half

        swapper = threading.Thread(target=hot_swap, daemon=True)
        t0 = time.perf_counter()
        swapper.start()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            list(pool.map(one, range(args.requests)))
        wall = time.perf_counter() - t0
        done.set()
        swapper.join()
        rss_after = _rss_mb(server.pid)
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()

    statuses, versions = {}, {}
    for _, status, version, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
        if version is not None:
            versions[str(version)] = versions.get(str(version), 0) + 1
    ok = [lat * 1000 for lat, status, _, big in results if status == "OK" and not big]
    ok_large = [lat * 1000 for lat, status, _, big in results if status == "OK" and big]
    first_v2 = next((n for n, (_, _, version, _) in enumerate(results) if version == 2), None)
    report = {
        "command": "python scripts/bench_serving.py " + " ".join(argv or sys.argv[1:]),
        "requests": args.requests,
        "concurrency": args.concurrency,
        "size": f"{width}x{height}",
        "model": f"SaGIMGenerator(base_filters={args.base_filters}, depth={args.depth})",
        "large_fraction": args.large_fraction,
        "large_size": f"{large_w}x{large_h}" if args.large_fraction > 0 else None,
        "wall_s": round(wall, 2),
        "throughput_rps": round(len(results) / wall, 1),
        "latency_ms": {
            "p50": _percentile(ok, 50),
            "p95": _percentile(ok, 95),
            "p99": _percentile(ok, 99),
            "max": _percentile(ok, 100),
        },
        "latency_large_ms": (
            {"p50": _percentile(ok_large, 50), "max": _percentile(ok_large, 100)}
            if ok_large
            else None
        ),
        "status_counts": statuses,
        "errors": {k: v for k, v in statuses.items() if k != "OK"},
        "errors_besides_back_pressure": sum(
            v for k, v in statuses.items() if k not in ("OK", "RESOURCE_EXHAUSTED")
        ),
        "versions_answered": versions,
        "hot_swap": {**swap, "first_v2_answer_index": first_v2},
        "server_rss_mb": {
            "before": round(rss_before, 1),
            "after": round(rss_after, 1),
            "growth_pct": round(100 * (rss_after - rss_before) / rss_before, 2),
        },
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "server_log": log_path,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
