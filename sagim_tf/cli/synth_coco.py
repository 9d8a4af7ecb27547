"""``sagim synth-coco``: write a synthetic COCO-format dataset (scenes + instances.json)."""

from __future__ import annotations

NAME = "synth-coco"
HELP = "write a synthetic COCO-format dataset (JPEG scenes and instances.json)"


def add_arguments(parser):
    parser.add_argument("--out", required=True, help="output folder (images/ and instances.json)")
    parser.add_argument("--images", type=int, required=True, metavar="N", help="number of scenes")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed; the same seed gives the same bytes"
    )
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=(320, 240),
        metavar=("W", "H"),
        help="scene size in pixels (default 320 240)",
    )
    parser.add_argument(
        "--min-objects", type=int, default=3, help="least objects per scene (default 3)"
    )
    parser.add_argument(
        "--max-objects", type=int, default=6, help="most objects per scene (default 6)"
    )
    parser.add_argument(
        "--style",
        choices=("photo", "shapes"),
        default="photo",
        help="photo: photographic textures from scikit-image's bundled photographs, "
        "shadows, defocus (default); shapes: flat colours, stripes, checkers",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args) -> int:
    # lazy: pycocotools (the `coco` extra) is needed only when this command runs
    from sagim_tf.data.synth_coco import generate_synthetic_coco

    path = generate_synthetic_coco(
        args.out,
        args.images,
        seed=args.seed,
        size=tuple(args.size),
        min_objects=args.min_objects,
        max_objects=args.max_objects,
        progress=not args.no_progress,
        style=args.style,
    )
    print(f"wrote {args.images} scenes to {args.out}; annotations: {path}")
    return 0
