"""``sagim edit``: edit one photo under a guiding map or boxes to (de-)emphasize.

Writes the edited image to ``--out`` (the input's size, RGB, any format Pillow writes) and
a five-panel figure (original, guidance, edited, saliency before, saliency after) to
``--figure`` (default: OUT's name with its extension replaced by ``_figure.png``).
See docs/editing.md.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from sagim_tf.cli._options import add_max_pixels_argument
from sagim_tf.guidance import check_strength, parse_box, region_mask
from sagim_tf.inference.editor import WORK_PIXELS, edit_image, load_editor, resize_map
from sagim_tf.inference.explain import describe, explain, operator_settings
from sagim_tf.inference.figures import write_edit_figure
from sagim_tf.models.generate import has_operator_head
from sagim_tf.utils.checks import check_distinct_outputs, check_output_path
from sagim_tf.utils.errors import ConfigError, InputError
from sagim_tf.utils.io import (
    atomic_write,
    image_metadata,
    load_image,
    load_map,
    max_pixels,
    save_image,
)

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
        "--emphasize-mask",
        action="append",
        default=[],
        metavar="MASK",
        help="mask image (white = the region, e.g. an object's cut-out) to make more salient "
        "(repeatable; resized to the photo if its size differs)",
    )
    parser.add_argument(
        "--deemphasize-mask",
        action="append",
        default=[],
        metavar="MASK",
        help="mask image of a region to make less salient (repeatable)",
    )
    parser.add_argument(
        "--out", required=True, metavar="OUT", help="where to write the edited image"
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="operator-head models: print the mean operator settings per guided region",
    )
    parser.add_argument(
        "--params-out",
        metavar="FILE.npz",
        default=None,
        help="operator-head models: save the operator fields and settings to a .npz file",
    )
    parser.add_argument(
        "--strength",
        type=float,
        default=1.0,
        metavar="A",
        help="how strong the edit is, in [0, 1]; default 1 (operator head: scales the "
        "operator settings, 0 returns the photo; residual head: blends the guidance from "
        "E(I) to the target)",
    )
    parser.add_argument(
        "--refine",
        type=int,
        default=0,
        metavar="STEPS",
        help="operator-head models: refine G's fields on its working copy by STEPS gradient "
        "steps against E before applying them (about 20 follow the guidance much more "
        "closely; each step costs one pass of E forward and back at G's working size); "
        "default 0",
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
        help="run G with the longer side scaled down to N (operator head: default its "
        "training size, fields applied at full size; residual head: default full size, "
        "G's change upscaled and added)",
    )
    add_max_pixels_argument(parser)
    parser.add_argument(
        "--work-pixels",
        type=float,
        default=None,
        metavar="N",
        help=f"residual head without --max-side: above N pixels (default {WORK_PIXELS}, "
        "1024x768), "
        "G runs on a copy of about N pixels and its change is upscaled (a warning says so)",
    )
    parser.add_argument(
        "--no-metadata",
        action="store_true",
        help="do not copy the photo's EXIF and ICC profile into OUT (default: copied "
        "into JPEG, PNG, WebP and TIFF outputs, the orientation reset to 1)",
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


def _load_mask(path: str, height: int, width: int, limit: int):
    mask = load_map(path, max_pixels=limit)
    if mask.shape[:2] != (height, width):
        mh, mw = mask.shape[:2]
        print(
            f"sagim edit: warning: mask {path} is {mw}x{mh}, the image {width}x{height}; "
            "resizing the mask to the image",
            file=sys.stderr,
        )
        mask = resize_map(mask, height, width)
    return mask[..., 0] > 0.5


def _explain(result, emphasize, deemphasize, height, width) -> None:
    regions = {}
    for name, items in (("emphasized", emphasize), ("de-emphasized", deemphasize)):
        if items:
            union = np.zeros((height, width), bool)
            for item in items:
                union |= region_mask(item, height, width, name)
            regions[name] = union
    guided = np.zeros((height, width), bool)
    for mask in regions.values():
        guided |= mask
    regions["elsewhere"] = ~guided
    for name, settings in explain(result["fields"], regions).items():
        print(f"sagim edit: {name}: {describe(settings)}")


def run(args) -> int:
    has_boxes = bool(
        args.emphasize or args.deemphasize or args.emphasize_mask or args.deemphasize_mask
    )
    if args.guidance and has_boxes:
        raise InputError("give either --guidance or boxes/masks to (de-)emphasize, not both")
    if not args.guidance and not has_boxes:
        raise InputError(
            "give --guidance MAP or at least one --emphasize/--deemphasize box or mask"
        )
    if args.params_out and not args.params_out.endswith(".npz"):
        raise InputError(f"--params-out {args.params_out!r}: expected a .npz file")
    strength = check_strength(args.strength)
    if args.refine < 0:
        raise InputError(f"--refine must be a whole number >= 0, got {args.refine}")
    if args.max_side is not None and args.max_side < 1:
        raise ConfigError(f"--max-side must be a positive integer, got {args.max_side}")
    if not has_boxes and (args.raise_to is not None or args.lower_factor is not None):
        raise ConfigError("--raise-to and --lower-factor apply only to boxes")
    emphasize = [parse_box(b) for b in args.emphasize]
    deemphasize = [parse_box(b) for b in args.deemphasize]

    limit = max_pixels(args.max_pixels, "--max-pixels")
    work_pixels = None
    if args.work_pixels is not None:
        work_pixels = max_pixels(args.work_pixels, "--work-pixels")

    # Every output is checked before any work: not an input, writable, a format to write.
    figure = None if args.no_figure else (args.figure or default_figure_path(args.out))
    inputs = [args.image, args.model, args.guidance, *args.emphasize_mask]
    inputs += args.deemphasize_mask
    if args.estimator and ":" in args.estimator:
        inputs.append(args.estimator.split(":", 1)[1])  # salgan:PATH, keras:PATH
    outputs = [(args.out, "--out"), (figure, "--figure"), (args.guidance_out, "--guidance-out")]
    for path, what in outputs:
        if path is not None:
            check_output_path(path, what, inputs=inputs, image=True)
    if args.params_out:
        check_output_path(args.params_out, "--params-out", inputs=inputs)
        outputs.append((args.params_out, "--params-out"))
    check_distinct_outputs(outputs)

    # uint8 as decoded: the edit stays uint8 to the encoder (no float copy of a big photo)
    image = load_image(args.image, dtype=np.uint8, max_pixels=limit)
    metadata = {} if args.no_metadata else image_metadata(args.image)
    h, w = image.shape[:2]
    target = None
    if args.guidance:
        target = load_map(args.guidance, max_pixels=limit)
        if target.shape[:2] != (h, w):
            gh, gw = target.shape[:2]
            print(
                f"sagim edit: warning: guidance {args.guidance} is {gw}x{gh}, the image "
                f"{w}x{h}; resizing the guidance to the image",
                file=sys.stderr,
            )
            target = resize_map(target, h, w)

    emphasize += [_load_mask(m, h, w, limit) for m in args.emphasize_mask]
    deemphasize += [_load_mask(m, h, w, limit) for m in args.deemphasize_mask]

    editor = load_editor(args.model, args.estimator)
    operators = has_operator_head(editor.generator)
    if (args.explain or args.params_out or args.refine) and not operators:
        raise ConfigError(
            f"--explain, --params-out and --refine need a model with the operator head; "
            f"{args.model} has the residual head (its edit is a pixel residual, not operator "
            "settings)"
        )
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
        work_pixels=work_pixels,
        max_pixels=limit,
        refine=args.refine,
        **box_options,
    )

    save_image(args.out, result["edited"], **metadata)
    print(f"sagim edit: wrote {args.out} ({w}x{h})")
    if args.explain:
        _explain(result, emphasize, deemphasize, h, w)
    if args.params_out:
        settings = operator_settings(result["fields"])
        atomic_write(
            args.params_out,
            lambda tmp: np.savez(tmp, fields=result["fields"], strength=strength, **settings),
            suffix=".npz",
        )
        print(f"sagim edit: wrote {args.params_out} (fields {result['fields'].shape})")
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
            boxes={
                "emphasize": [b for b in emphasize if np.ndim(b) == 1],
                "deemphasize": [b for b in deemphasize if np.ndim(b) == 1],
            },
            exposure=operator_settings(result["fields"])["exposure"] if operators else None,
        )
        print(f"sagim edit: wrote {figure}")
    return 0
