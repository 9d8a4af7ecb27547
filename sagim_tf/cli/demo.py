"""``sagim demo [--out runs/demo]``: the whole pipeline on this CPU, no download needed.

It trains the registered ``demo-cpu`` experiment (``sagim train --list-experiments``), G
with the photographic-operator head, and the same setup with the paper's residual head
beside it for comparison (``--heads operators`` skips the second).
"""

from __future__ import annotations

import sys

from sagim_tf.utils.errors import ConfigError, Preempted

NAME = "demo"
HELP = "run the pipeline end to end on generated data: build SAM, train, evaluate, edit, report"


def add_arguments(parser):
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument(
        "--minutes",
        type=float,
        default=5.0,
        help="each head's training time budget in minutes (default 5; run again to train more)",
    )
    parser.add_argument(
        "--heads",
        default="operators,residual",
        help="G's heads to train, comma-separated, the operator head first: "
        "operators,residual (default; compared side by side) or operators",
    )
    parser.add_argument(
        "--images", type=int, default=900, help="synthetic COCO images (default 900)"
    )
    parser.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        default=(72, 96),
        metavar=("HEIGHT", "WIDTH"),
        help="training and evaluation image size, height then width (default 72 96)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--eval-limit",
        type=int,
        default=None,
        help="evaluate at most this many test images (default all)",
    )
    parser.add_argument(
        "--refine-steps",
        type=int,
        default=None,
        metavar="STEPS",
        help="refinement steps of the operator head's fields per image for the "
        "sagim-refined rows and the photo edits (default 20; 0 leaves them out)",
    )


def run(args) -> int:
    if args.minutes <= 0 or args.images < 10:
        raise ConfigError("--minutes must be > 0 and --images at least 10")
    heads = tuple(h.strip() for h in args.heads.split(",") if h.strip())
    if heads not in (("operators", "residual"), ("operators",)):
        raise ConfigError(f"--heads must be operators,residual or operators, got {args.heads!r}")
    # lazy: the demo imports TensorFlow; `sagim demo --help` should not wait for it
    from sagim_tf.workflows.demo import (
        run_demo,
    )  # lazy: TensorFlow only once the options are checked

    try:
        out = run_demo(
            args.out,
            minutes=args.minutes,
            images=args.images,
            image_size=tuple(args.image_size),
            seed=args.seed,
            eval_limit=args.eval_limit,
            heads=heads,
            **({} if args.refine_steps is None else {"refine_steps": args.refine_steps}),
        )
    except Preempted as exc:
        print(f"sagim demo: {exc}", file=sys.stderr)
        return Preempted.EXIT_CODE
    print()
    print(out["table"])
    print()
    for key, path in out["paths"].items():
        print(f"{key}: {path}")
    if out["comparison"]:
        reason = out["comparison"]["photos"]["reason"]
        print(f"\nPhotos edited with the {out['head']} head: {reason}.")
    print(f"\nDone in {out['seconds'] / 60:.1f} minutes ({out['g_steps']} G steps).")
    return 0
