"""``sagim build-sam``: build the SAM dataset (paper §4.1) as sharded TFRecords."""

from __future__ import annotations

import os

from sagim_tf.data.selection import SelectionRule
from sagim_tf.guidance import GuidanceConfig
from sagim_tf.utils.checks import same_file
from sagim_tf.utils.errors import InputError

NAME = "build-sam"
HELP = "build the SAliency Manipulation dataset from COCO-format annotations"


def add_arguments(parser):
    parser.add_argument(
        "--images",
        required=True,
        nargs="+",
        metavar="DIR",
        help="image folder(s), searched in order (e.g. train2017 val2017)",
    )
    parser.add_argument(
        "--annotations",
        required=True,
        nargs="+",
        metavar="FILE",
        help="COCO instances JSON file(s)",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--estimator",
        required=True,
        metavar="SPEC",
        help="saliency estimator E, e.g. itti-koch, salgan:PATH, keras:PATH",
    )
    parser.add_argument(
        "--train", type=int, default=4000, metavar="N", help="train images (default 4000)"
    )
    parser.add_argument(
        "--test", type=int, default=11686, metavar="M", help="test images (default 11686)"
    )
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=(256, 192),
        metavar=("W", "H"),
        help="stored size (default 256 192)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the split and the guidance factors"
    )
    parser.add_argument(
        "--shard-size", type=int, default=256, help="images per shard (default 256)"
    )
    parser.add_argument(
        "--image-format",
        choices=("jpeg", "png"),
        default="jpeg",
        help="stored image encoding (maps are always PNG)",
    )
    parser.add_argument(
        "--raise-range",
        type=float,
        nargs=2,
        default=(0.5, 1.0),
        metavar=("LO", "HI"),
        help="range of O_low's target mean, as a fraction of O_high's mean (default 0.5 1.0)",
    )
    parser.add_argument(
        "--lower-range",
        type=float,
        nargs=2,
        default=(0.2, 0.6),
        metavar=("LO", "HI"),
        help="range of O_high's lower factor (default 0.2 0.6)",
    )
    parser.add_argument(
        "--sigma-fraction",
        type=float,
        default=0.02,
        help="Gaussian sigma as a fraction of min(W, H) (default 0.02)",
    )
    parser.add_argument(
        "--require-all",
        action="store_true",
        help="strict selection: every object must cover 10%%-70%%",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="images per estimator call")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a build of another configuration in --out"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _check_out(args) -> None:
    """--out is a folder of its own: not an image folder, not an annotations file."""
    inputs = [*args.images, *args.annotations]
    if ":" in args.estimator:
        inputs.append(args.estimator.split(":", 1)[1])  # salgan:PATH, keras:PATH
    for source in inputs:
        if same_file(args.out, source):
            raise InputError(
                f"--out {args.out!r} is an input ({source!r}); give a folder of its own"
            )
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise InputError(f"--out {args.out!r} is a file; give a folder")


def run(args) -> int:
    _check_out(args)
    # lazy: the builder imports TensorFlow; `sagim --help` should not wait for it
    from sagim_tf.data.sam.builder import BuildConfig, build_sam

    config = BuildConfig(
        size=tuple(args.size),
        train=args.train,
        test=args.test,
        seed=args.seed,
        shard_size=args.shard_size,
        image_format=args.image_format,
        batch_size=args.batch_size,
        selection=SelectionRule(require_all=args.require_all),
        guidance=GuidanceConfig(
            raise_range=tuple(args.raise_range),
            lower_range=tuple(args.lower_range),
            sigma_fraction=args.sigma_fraction,
        ),
    )
    manifest = build_sam(
        args.images,
        args.annotations,
        args.out,
        args.estimator,
        config,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    c = manifest["counts"]
    print(
        f"SAM: {c['train']} train + {c['test']} test records in {args.out} "
        f"({c['selected']} selected, skipped {c['skipped']})"
    )
    return 0
