"""The judge in the loop: G refined against E and against a copy of spectral residual.

Reads a `sagim demo` folder (its operator-head G in run/ and its SAM data), refines G's
fields for each image of a split under the binary guiding map against E (as `sagim edit
--refine` does) and against a differentiable copy of the spectral-residual judge, scores
both and the baselines under the demo's three judges, and prints a Markdown table (also
written as JSON to --out)::

    sagim demo --out runs/demo
    python scripts/judge_bound.py --demo runs/demo --split train --limit 225

The row refined against the judge is a measurement of what the edit can reach, not a
method (docs/training.md, "The judge in the loop").
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from sagim_tf.utils.errors import InputError
from sagim_tf.workflows.demo_folder import demo_inputs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", required=True, help="a `sagim demo` folder")
    parser.add_argument("--split", choices=("train", "test"), default="test")
    parser.add_argument("--limit", type=int, default=0, help="first N images (0: all)")
    parser.add_argument("--refine-steps", type=int, default=20)
    parser.add_argument(
        "--baseline", action="append", help="baseline to compare with (repeatable; default hag)"
    )
    parser.add_argument("--out", default=None, help="JSON file (default: DEMO/judge_bound.json)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        model_path, sam = demo_inputs(args.demo)
    except InputError as exc:
        print(f"judge_bound: {exc}", file=sys.stderr)
        return 2
    if args.limit < 0 or args.refine_steps < 1:
        print("judge_bound: --limit must be >= 0 and --refine-steps >= 1", file=sys.stderr)
        return 2
    # lazy: TensorFlow loads only once the arguments are checked
    from sagim_tf.data.sam.manifest import read_manifest
    from sagim_tf.estimators import build_estimator
    from sagim_tf.evaluation.records import load_records
    from sagim_tf.models.loading import load_generator
    from sagim_tf.workflows.demo import JUDGES
    from sagim_tf.workflows.judge_bound import bound_methods
    from sagim_tf.workflows.strength_curve import format_curve, strength_curve

    generator = load_generator(model_path)
    estimator = build_estimator(read_manifest(sam)["estimator"])
    methods = bound_methods(
        generator, estimator, args.refine_steps, tuple(args.baseline or ("hag",))
    )
    records = load_records(sam, args.split, limit=args.limit or None)
    judges = {name: build_estimator(name) for name in JUDGES}
    table = strength_curve(records, methods, judges)
    print(f"{len(records)} {args.split} images, binary guiding map\n")
    print(format_curve(table, JUDGES))
    out = args.out or os.path.join(args.demo, "judge_bound.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"split": args.split, "n_images": len(records), "methods": table}, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
