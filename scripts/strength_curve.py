"""Edit strength against guidance consistency: operator-rule at several strengths and G refined.

Reads a `sagim demo` folder (its operator-head G in run/ and its SAM test split), edits the
test images under the binary guiding map with `operator-rule` scaled by each --rule-scale
and with G alone and refined under each --refine weighting, scores every edit under the
demo's three judges, and prints a Markdown table (also written as JSON to --out)::

    sagim demo --out runs/demo
    python scripts/strength_curve.py --demo runs/demo --rule-scale 0.5 --rule-scale 1 \\
        --refine "" --refine rec=20,locality=10

The table is docs/evaluation.md's "Strength against consistency".
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from sagim_tf.utils.errors import InputError
from sagim_tf.workflows.demo_folder import demo_inputs


def parse_weighting(text: str) -> dict:
    """``"rec=20,locality=10"`` -> ``{"rec": 20.0, "locality": 10.0}``; ``""`` -> ``{}``."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected NAME=NUMBER, got {part!r}")
        try:
            out[key.strip()] = float(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{key}: not a number: {value!r}") from exc
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", required=True, help="a `sagim demo` folder")
    parser.add_argument(
        "--rule-scale", type=float, action="append", help="operator-rule strength (repeatable)"
    )
    parser.add_argument(
        "--refine",
        type=parse_weighting,
        action="append",
        metavar="NAME=W,...",
        help='refinement weights (repeatable; "" is the refiner\'s own)',
    )
    parser.add_argument("--refine-steps", type=int, default=20)
    parser.add_argument("--limit", type=int, default=0, help="first N test images (0: all)")
    parser.add_argument("--out", default=None, help="JSON file (default: DEMO/strength_curve.json)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        model_path, sam = demo_inputs(args.demo)
    except InputError as exc:
        print(f"strength_curve: {exc}", file=sys.stderr)
        return 2
    if args.limit < 0:
        print("strength_curve: --limit must be >= 0", file=sys.stderr)
        return 2
    # lazy: TensorFlow loads only once the arguments are checked
    from sagim_tf.data.sam.manifest import read_manifest
    from sagim_tf.estimators import build_estimator
    from sagim_tf.evaluation.records import load_records
    from sagim_tf.models.loading import load_generator
    from sagim_tf.workflows import strength_curve as sc
    from sagim_tf.workflows.demo import JUDGES

    generator = load_generator(model_path)
    estimator = build_estimator(read_manifest(sam)["estimator"])
    methods = sc.curve_methods(
        generator,
        estimator,
        sc.DEFAULT_RULE_SCALES if args.rule_scale is None else args.rule_scale,
        sc.DEFAULT_REFINE_WEIGHTINGS if args.refine is None else args.refine,
        refine_steps=args.refine_steps,
    )
    records = load_records(sam, "test")
    if args.limit:
        records = records[: args.limit]
    judges = {name: build_estimator(name) for name in JUDGES}
    curve = sc.strength_curve(records, methods, judges)
    print(f"{len(records)} test images, binary guiding map\n")
    print(sc.format_curve(curve, JUDGES))
    out = args.out or os.path.join(args.demo, "strength_curve.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"n_images": len(records), "methods": curve}, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
