"""``sagim demo [--out runs/demo]``: the whole pipeline on this CPU, no download needed."""

from __future__ import annotations

NAME = "demo"
HELP = "run the pipeline end to end on generated data: build SAM, train, evaluate, edit, report"


def add_arguments(parser):
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument("--minutes", type=float, default=7.0,
                        help="training time budget in minutes (default 7; run again to train more)")
    parser.add_argument("--images", type=int, default=900, help="synthetic COCO images (default 900)")
    parser.add_argument("--size", type=int, nargs=2, default=(96, 72), metavar=("W", "H"),
                        help="training and evaluation image size (default 96 72)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-limit", type=int, default=None,
                        help="evaluate at most this many test images (default all)")


def run(args) -> int:
    from sagim_tf.utils.errors import ConfigError

    if args.minutes <= 0 or args.images < 10:
        raise ConfigError("--minutes must be > 0 and --images at least 10")
    from sagim_tf.workflows.demo import run_demo

    out = run_demo(args.out, minutes=args.minutes, images=args.images, size=tuple(args.size),
                   seed=args.seed, eval_limit=args.eval_limit)
    print()
    print(out["table"])
    print()
    for key, path in out["paths"].items():
        print(f"{key}: {path}")
    print(f"\nDone in {out['seconds'] / 60:.1f} minutes.")
    return 0
