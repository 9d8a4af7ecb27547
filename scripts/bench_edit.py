"""End-to-end edit time of a 12-megapixel JPEG against a 256x192 one, for both heads of G.

Prints one JSON object. For each head, a fresh Python process loads (or builds) the model,
then times whole edits inside that process, the two sizes taking turns: JPEG decode (to
uint8, as ``sagim edit`` reads a photo) -> E and G on the working copy -> the edit at the
photo's resolution -> JPEG encode (no figure). It reports the median wall time of each
size, its minimum, the median CPU time of the process (all threads; steadier than wall
time on a shared machine), the ratio of the median wall times, and the process's peak RSS
(model load included). Example::

    python scripts/bench_edit.py                                   # built-in models
    python scripts/bench_edit.py --operators runs/demo/run/sagim.keras --repeats 5
    python scripts/bench_edit.py --heads operators --refine 20     # also refined edits

With ``--refine STEPS`` the operator head is also timed with its fields refined by that
many steps against E on its working copy (``sagim edit --refine``), as ``12mp_refine`` and
``small_refine``.

Without a model file, each head is the default ``SaGIMGenerator`` (base 32) with random
weights (time does not depend on their values; the operator head's zero-initialised last
layer gets random weights too, so that its fields are not skipped as all-zero).

The residual head cannot run G on a 12 MP photo on a CPU machine (the landed demo model
took 24 GB at base 16), so it is timed on the ``--max-side`` path, G at the working size
and its change upscaled; the operator head runs G at its work size and applies its fields
at full size, which is its default.

Targets (issue 13): a 4032x3024 edit in at most 4x the time of a 256x192 edit and under
2 s on this CPU, peak RSS of the whole process under 2 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

SIZES = {"12mp": (3024, 4032), "small": (192, 256)}  # (height, width)
WORK_SIZE = 256


def _photo(path: str, height: int, width: int) -> None:
    """A JPEG of scikit-image's astronaut, resized to (height, width)."""
    import numpy as np  # lazy: the parent process only spawns children
    import skimage.data
    from PIL import Image

    img = Image.fromarray(np.asarray(skimage.data.astronaut())).resize(
        (width, height), Image.BICUBIC
    )
    img.save(path, quality=92)


def _child(args) -> dict:
    import numpy as np

    from sagim_tf.estimators import build_estimator
    from sagim_tf.inference.editor import Editor, edit_image, load_editor
    from sagim_tf.models.generator import SaGIMGenerator
    from sagim_tf.utils.io import load_image, save_image

    if args.model:
        editor = load_editor(args.model)
    else:
        g = SaGIMGenerator(head=args.head, work_size=WORK_SIZE)
        if args.head == "operators":
            layer = g.get_layer("fields_coarse")
            rng = np.random.default_rng(0)
            layer.set_weights(
                [rng.normal(0, 0.02, w.shape).astype(np.float32) for w in layer.get_weights()]
            )
        editor = Editor(g, build_estimator("itti-koch"))
    max_side = None if args.head == "operators" else WORK_SIZE
    out = {"head": args.head, "model": args.model or "built-in, random weights"}
    with tempfile.TemporaryDirectory() as tmp:
        edits = {}
        refines = {"": 0}
        if args.refine and args.head == "operators":
            refines["_refine"] = args.refine
        for name, (h, w) in SIZES.items():
            src = os.path.join(tmp, f"{name}.jpg")
            _photo(src, h, w)
            dst = os.path.join(tmp, f"{name}_edited.jpg")
            box = (w * 0.3, h * 0.2, w * 0.6, h * 0.6)
            for suffix, steps in refines.items():

                def once(src=src, dst=dst, box=box, steps=steps):
                    image = load_image(src, dtype=np.uint8)  # as `sagim edit` reads it
                    result = edit_image(
                        editor, image, emphasize=[box], max_side=max_side, refine=steps
                    )
                    save_image(dst, result["edited"])

                once()  # warm-up: traces the compiled steps
                edits[name + suffix] = once
        # the sizes take turns, so that both see the same load on a shared machine
        wall = {name: [] for name in edits}
        cpu = {name: [] for name in edits}
        for _ in range(args.repeats):
            for name, once in edits.items():
                t, c = time.perf_counter(), time.process_time()
                once()
                wall[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
        for name in edits:
            out[f"{name}_s"] = round(statistics.median(wall[name]), 3)
            out[f"{name}_min_s"] = round(min(wall[name]), 3)
            out[f"{name}_cpu_s"] = round(statistics.median(cpu[name]), 3)
    out["ratio_12mp_to_small"] = round(out["12mp_s"] / out["small_s"], 2)
    if "12mp_refine_s" in out:  # both refined
        out["ratio_12mp_to_small_refined"] = round(out["12mp_refine_s"] / out["small_refine_s"], 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residual", metavar="KERAS", help="a .keras file with a residual-head G")
    parser.add_argument(
        "--operators", metavar="KERAS", help="a .keras file with an operator-head G"
    )
    parser.add_argument("--heads", default="operators,residual", help="heads to time")
    parser.add_argument("--repeats", type=int, default=3, help="timed edits per size (median)")
    parser.add_argument(
        "--refine", type=int, default=0, metavar="STEPS", help="also time refined operator edits"
    )
    parser.add_argument("--child", choices=("operators", "residual"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.head = args.child
        print(json.dumps(_child(args)))
        return 0
    import platform

    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "sizes": {k: f"{w}x{h}" for k, (h, w) in SIZES.items()},
        "heads": {},
    }
    for head in args.heads.split(","):
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--child",
            head,
            "--repeats",
            str(args.repeats),
            "--refine",
            str(args.refine),
        ]
        model = getattr(args, head)
        if model:
            cmd += ["--model", model]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            report["heads"][head] = {"error": proc.stderr.strip().splitlines()[-1:]}
            continue
        report["heads"][head] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
