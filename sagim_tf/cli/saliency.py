"""``sagim saliency IMAGE --estimator SPEC --out MAP.png``: one image's saliency map.

Writes the map (greyscale PNG, same size as the image) and a heat-map overlay a person can
look at (JET colour map blended with the photograph), by default beside the map as
``MAP_overlay.png``.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from sagim_tf.cli._options import add_max_pixels_argument
from sagim_tf.estimators import build_estimator
from sagim_tf.utils.checks import check_distinct_outputs, check_output_path
from sagim_tf.utils.errors import ConfigError
from sagim_tf.utils.io import load_image, max_pixels, save_image

NAME = "saliency"
HELP = (
    "estimate an image's saliency map with any estimator spec and write it with a heat-map overlay"
)


def add_arguments(parser) -> None:
    parser.add_argument("image", help="input image (PNG, JPEG, ...)")
    parser.add_argument(
        "--estimator",
        default="itti-koch",
        help="estimator spec: itti-koch (default), salgan:PATH, keras:PATH, "
        "spectral-residual, fine-grained",
    )
    parser.add_argument("--out", required=True, help="output map path (.png or .jpg)")
    parser.add_argument(
        "--overlay",
        default=None,
        help="overlay path (default: OUT's name with _overlay before the extension)",
    )
    parser.add_argument(
        "--alpha",
        type=float,
        default=0.5,
        help="weight of the heat map in the overlay, in [0, 1] (default 0.5)",
    )
    add_max_pixels_argument(parser)


def overlay_heatmap(image, saliency, alpha=0.5):
    """Blend a JET heat map of ``saliency`` (H, W[, 1]) onto ``image`` (H, W, 3); all in [0, 1]."""
    sal = np.clip(np.asarray(saliency, np.float32).reshape(image.shape[:2]), 0.0, 1.0)
    heat_bgr = cv2.applyColorMap((sal * 255.0 + 0.5).astype(np.uint8), cv2.COLORMAP_JET)
    heat = heat_bgr[..., ::-1].astype(np.float32) / 255.0
    return np.clip((1.0 - alpha) * image + alpha * heat, 0.0, 1.0)


def default_overlay_path(out: str) -> str:
    stem, ext = os.path.splitext(out)
    return f"{stem}_overlay{ext or '.png'}"


def run(args) -> int:
    if not 0.0 <= args.alpha <= 1.0:
        raise ConfigError(f"--alpha must lie in [0, 1], got {args.alpha}")
    limit = max_pixels(args.max_pixels, "--max-pixels")
    # Every output is checked before any work: not an input, writable, a format to write.
    overlay_path = args.overlay or default_overlay_path(args.out)
    outputs = [(args.out, "--out"), (overlay_path, "--overlay")]
    inputs = [args.image]
    if ":" in args.estimator:
        inputs.append(args.estimator.split(":", 1)[1])  # salgan:PATH, keras:PATH
    for path, what in outputs:
        check_output_path(path, what, inputs=inputs, image=True)
    check_distinct_outputs(outputs)

    # raises InputError for missing or corrupt files, and above the pixel budget
    image = load_image(args.image, max_pixels=limit)
    estimator = build_estimator(args.estimator)
    saliency = np.asarray(estimator(image[None]))[0]
    save_image(args.out, saliency)
    save_image(overlay_path, overlay_heatmap(image, saliency, args.alpha))
    kind = (
        "differentiable"
        if getattr(estimator, "differentiable", True)
        else "judge, not differentiable"
    )
    print(f"{args.image}: {args.estimator} ({kind}) -> {args.out}, overlay {overlay_path}")
    return 0
