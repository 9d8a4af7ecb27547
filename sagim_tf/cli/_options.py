"""Options several ``sagim`` commands share (a private module: not a command itself)."""

from __future__ import annotations

from sagim_tf.utils.io import MAX_PIXELS_ENV


def add_max_pixels_argument(parser) -> None:
    """``--max-pixels N``: the pixel budget of every image the command reads."""
    parser.add_argument(
        "--max-pixels",
        type=float,
        default=None,
        metavar="N",
        help=f"refuse images of more than N pixels, read from the header before decoding "
        f"(default ${MAX_PIXELS_ENV} or 100e6)",
    )
