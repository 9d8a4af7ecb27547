"""``sagim edit``: edit one photo under a guiding map or boxes to (de-)emphasize.

Writes the edited image to ``--out`` (the input's size, RGB, any format Pillow writes) and
a five-panel figure (original, guidance, edited, saliency before, saliency after) to
``--figure`` (default: OUT's name with its extension replaced by ``_figure.png``).
See docs/editing.md.
"""

from __future__ import annotations

import os
import sys

from PIL import Image

from sagim_tf.guidance import check_strength, parse_box
from sagim_tf.inference.editor import edit_image, load_editor, resize_map
from sagim_tf.inference.figures import write_edit_figure
from sagim_tf.utils.errors import ConfigError, InputError
from sagim_tf.utils.io import load_image, load_map, save_image

NAME = "edit"
HELP = "edit a photo so that its saliency follows a guiding map or boxes"


def add_arguments(parser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        metavar="PATH",
        help=".keras file holding a trained SaGIM or a bare SaGIMGenerator",
    )
    parser.add_argument(
        "--image",
        required=True,
        metavar="IMG",
        help="the photo to edit (any size; RGBA is composited onto white, "
        "greyscale is expanded to RGB)",
    )
    parser.add_argument(
        "--guidance",
        metavar="MAP",
        help="target guiding map image (greyscale; resized to the photo if its size differs)",
    )
    parser.add_argument(
        "--emphasize",
        action="append",
        default=[],
        metavar="x0,y0,x1,y1",
        help="pixel box to make more salient (repeatable)",
    )
    parser.add_argument(
        "--deemphasize",
        action="append",
        default=[],
        metavar="x0,y0,x1,y1",
        help="pixel box to make less salient (repeatable)",
    )
    parser.add_argument(
        "--out", required=True, metavar="OUT", help="where to write the edited image"
    )
    parser.add_argument(
        "--strength",
        type=float,
        default=1.0,
        metavar="A",
        help="blend the guidance from E(I) (0) to the target (1); default 1",
    )
    parser.add_argument(
        "--estimator",
        metavar="SPEC",
        default=None,
        help="saliency estimator spec (itti-koch, salgan:PATH, keras:PATH); needed "
        "for a bare generator (default itti-koch), replaces a full model's E",
    )
    parser.add_argument(
        "--figure",
        metavar="PATH",
        default=None,
        help="where to write the comparison figure (default OUT_figure.png)",
    )
    parser.add_argument("--no-figure", action="store_true", help="do not write the figure")
    parser.add_argument(
        "--guidance-out", metavar="PATH", default=None, help="also write the guiding map G received"
    )
    parser.add_argument(
        "--max-side",
        type=int,
        default=None,
        metavar="N",
        help="run G with the longer side scaled down to N and add its upscaled "
        "change to the full-resolution photo (default: full size)",
    )
    parser.add_argument(
        "--raise-to",
        type=float,
        default=None,
        metavar="F",
        help="boxes: emphasized box mean lifted to F times the de-emphasized "
        "box's (or the photo's top 10%%) mean saliency (in (0, 2]; default 1)",
    )
    parser.add_argument(
        "--lower-factor",
        type=float,
        default=None,
        metavar="F",
        help="boxes: de-emphasized saliency multiplied by F (in [0, 1); default 0.2)",
    )


def default_figure_path(out: str) -> str:
    """``photo_edit.jpg`` -> ``photo_edit_figure.png``."""
    return os.path.splitext(out)[0] + "_figure.png"


def _same_file(a: str, b: str) -> bool:
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.abspath(a) == os.path.abspath(b)


def _check_writable_image_path(path: str, image_path: str, what: str) -> None:
    if _same_file(path, image_path):
        raise InputError(f"{what} {path!r} is the input image; refusing to overwrite it")
    if os.path.isdir(path):
        raise InputError(f"{what} {path!r} is a directory")
    ext = os.path.splitext(path)[1].lower()
    if ext not in Image.registered_extensions():
        raise InputError(
            f"{what} {path!r}: unknown image extension {ext or '(none)'!r} (use .png or .jpg)"
        )


def run(args) -> int:
    has_boxes = bool(args.emphasize or args.deemphasize)
    if args.guidance and has_boxes:
        raise InputError("give either --guidance or --emphasize/--deemphasize boxes, not both")
    if not args.guidance and not has_boxes:
        raise InputError("give --guidance MAP or at least one --emphasize/--deemphasize box")
    strength = check_strength(args.strength)
    if args.max_side is not None and args.max_side < 1:
        raise ConfigError(f"--max-side must be a positive integer, got {args.max_side}")
    if not has_boxes and (args.raise_to is not None or args.lower_factor is not None):
        raise ConfigError("--raise-to and --lower-factor apply only to boxes")
    emphasize = [parse_box(b) for b in args.emphasize]
    deemphasize = [parse_box(b) for b in args.deemphasize]

    figure = None if args.no_figure else (args.figure or default_figure_path(args.out))
    outputs = [(args.out, "--out")]
    if figure:
        outputs.append((figure, "--figure"))
    if args.guidance_out:
        outputs.append((args.guidance_out, "--guidance-out"))
    for path, what in outputs:
        _check_writable_image_path(path, args.image, what)
    for i, (a, wa) in enumerate(outputs):
        for b, wb in outputs[i + 1 :]:
            if _same_file(a, b):
                raise InputError(f"{wa} and {wb} are the same file {a!r}")

    image = load_image(args.image)
    h, w = image.shape[:2]
    target = None
    if args.guidance:
        target = load_map(args.guidance)
        if target.shape[:2] != (h, w):
            gh, gw = target.shape[:2]
            print(
                f"sagim edit: warning: guidance {args.guidance} is {gw}x{gh}, the image "
                f"{w}x{h}; resizing the guidance to the image",
                file=sys.stderr,
            )
            target = resize_map(target, h, w)

    editor = load_editor(args.model, args.estimator)
    box_options = {}
    if args.raise_to is not None:
        box_options["raise_to"] = args.raise_to
    if args.lower_factor is not None:
        box_options["lower_factor"] = args.lower_factor
    result = edit_image(
        editor,
        image,
        guidance=target,
        emphasize=emphasize,
        deemphasize=deemphasize,
        strength=strength,
        max_side=args.max_side,
        **box_options,
    )

    save_image(args.out, result["edited"])
    print(f"sagim edit: wrote {args.out} ({w}x{h})")
    if args.guidance_out:
        save_image(args.guidance_out, result["guidance"])
        print(f"sagim edit: wrote {args.guidance_out}")
    if figure:
        write_edit_figure(
            figure,
            image,
            result["guidance"],
            result["edited"],
            result["saliency_before"],
            result["saliency_after"],
        )
        print(f"sagim edit: wrote {figure}")
    return 0
