"""The edit figure's panel size: the image's aspect, within bounds for any shape."""

import numpy as np
import pytest
from PIL import Image

from sagim_tf.inference.figures import MAX_PANEL_SIDE, figure_panel_size, write_edit_figure


@pytest.mark.parametrize("height, width", [(5, 5000), (5000, 5), (3024, 4032), (1, 1)])
def test_panels_keep_the_aspect_within_the_largest_side(height, width):
    ph, pw = figure_panel_size(height, width)
    assert 1 <= ph <= MAX_PANEL_SIDE and 1 <= pw <= MAX_PANEL_SIDE
    if min(ph, pw) > 1:
        # rounding each side to whole pixels moves the aspect by at most one pixel's worth
        assert abs(pw / ph - width / height) <= (width / height) / min(ph, pw) + 1e-9


def test_a_sliver_of_an_image_makes_a_figure_of_bounded_size(tmp_path):
    image = np.random.default_rng(0).uniform(0, 1, (5, 5000, 3)).astype(np.float32)
    plane = image[..., :1]
    path = write_edit_figure(str(tmp_path / "f.png"), image, plane, image, plane, plane)
    with Image.open(path) as fig:
        width, height = fig.size
    # five panels of at most MAX_PANEL_SIDE, gaps and a label strip: not 640,016 pixels wide
    assert width <= 5 * MAX_PANEL_SIDE + 64 and height <= MAX_PANEL_SIDE + 64
