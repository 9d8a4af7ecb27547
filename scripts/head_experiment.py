"""Train one variant of the demo's G for a fixed number of steps and evaluate it.

The runs behind docs/training.md's tables: each is ``demo-cpu`` under a demo folder's SAM
split, with one change (``--set``), trained for a fixed number of G steps (no time budget,
so the result does not depend on the machine's load), then evaluated on the test split
under the continuous and the binary guiding maps with the three judges; ``--refine-steps``
adds the refined operator edits. Prints one JSON and writes it to ``OUT/NAME.json``::

    sagim demo --out runs/demo                       # once: the SAM split
    python scripts/head_experiment.py --demo runs/demo --name prior5 --steps 500 \\
        --set losses.settings=5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", required=True, help="a `sagim demo` folder (its sam/ is used)")
    parser.add_argument("--name", required=True, help="the run's name (its folder and JSON)")
    parser.add_argument("--head", default="operators", choices=("operators", "residual"))
    parser.add_argument("--steps", type=int, default=500, help="G steps (a multiple of 50)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides"
    )
    parser.add_argument("--refine-steps", type=int, default=0, help="also the refined edits")
    parser.add_argument("--out", default="runs/experiments", help="where runs and JSON go")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.steps < 50 or args.steps % 50:
        print("head_experiment: --steps must be a positive multiple of 50", file=sys.stderr)
        return 2
    # lazy: TensorFlow loads only once the arguments are checked
    from sagim_tf.estimators import build_estimator
    from sagim_tf.evaluation.evaluator import evaluate_methods
    from sagim_tf.evaluation.records import generator_method, load_records
    from sagim_tf.training.config import load_config, replace_config
    from sagim_tf.training.run import run_training
    from sagim_tf.workflows.demo import JUDGES, demo_config
    from sagim_tf.workflows.strength_curve import summary_row

    cfg = demo_config(args.demo, head=args.head)
    cfg = replace_config(
        cfg,
        {
            "run_dir": os.path.join(args.out, args.name),
            "train": {"epochs": args.steps // 50, "steps_per_epoch": 50, "time_budget_minutes": 0},
        },
    )
    cfg = load_config(None, args.set, base=cfg)
    start = time.monotonic()
    summary = run_training(cfg)
    model = summary.pop("model_object")
    trained = time.monotonic() - start
    records = load_records(os.path.join(args.demo, "sam"), "test")
    methods = {}
    for kind, suffix in (("continuous", ""), ("binary", "-binary")):
        methods[args.name + suffix] = generator_method(model.generator, kind)
        if args.refine_steps:
            methods[f"{args.name}-refined{suffix}"] = generator_method(
                model.generator, kind, refine_steps=args.refine_steps, estimator=model.estimator
            )
    judges = {name: build_estimator(name) for name in JUDGES}
    result = evaluate_methods(records, methods, judges, progress=False)
    out = {"g_steps": summary["g_steps"], "train_seconds": round(trained), "methods": {}}
    for name, agg in result.aggregates.items():
        out["methods"][name] = summary_row(agg, JUDGES)
    text = json.dumps(out, indent=1)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"{args.name}.json"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
