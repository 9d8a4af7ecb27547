"""``sagim edit`` with an operator-head G: masks, --explain, --params-out, the figure."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sagim_tf.cli import main
from sagim_tf.inference.explain import describe, explain, operator_settings
from sagim_tf.layers.photo_operators import NUM_OPERATORS, OPERATOR_NAMES
from sagim_tf.models.generator import SaGIMGenerator
from sagim_tf.utils.errors import InputError
from tests.helpers import nudge_operator_head, tiny_estimator

H, W = 60, 84


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("edit-ops")
    g = SaGIMGenerator(
        base_filters=4,
        depth=2,
        num_residual_blocks=0,
        head="operators",
        field_stride=4,
        work_size=42,
    )
    nudge_operator_head(g, seed=0, kernel_std=0.3, bias_std=0.3)
    g.save(d / "g.keras")
    residual = SaGIMGenerator(base_filters=4, depth=1, num_residual_blocks=0)
    residual.save(d / "residual.keras")
    tiny_estimator().save(d / "e.keras")
    yy, xx = np.mgrid[0:H, 0:W]
    photo = np.stack([xx * 3 % 256, yy * 4 % 256, (xx + yy) * 2 % 256], -1).astype(np.uint8)
    Image.fromarray(photo).save(d / "photo.png")
    mask = np.zeros((H, W), np.uint8)
    mask[10:40, 50:80] = 255
    Image.fromarray(mask).save(d / "mask.png")
    Image.fromarray(mask[::2, ::2]).save(d / "mask_small.png")
    return {
        k: str(d / v)
        for k, v in (
            ("g", "g.keras"),
            ("residual", "residual.keras"),
            ("e", "e.keras"),
            ("photo", "photo.png"),
            ("mask", "mask.png"),
            ("mask_small", "mask_small.png"),
        )
    }


def _edit(files, out, *extra, model="g"):
    return main(
        [
            "edit",
            "--model",
            files[model],
            "--estimator",
            f"keras:{files['e']}",
            "--image",
            files["photo"],
            "--out",
            str(out),
            *extra,
        ]
    )


def test_explain_params_and_figure(files, tmp_path, capsys):
    out = tmp_path / "out.png"
    code = _edit(
        files,
        out,
        "--emphasize",
        "5,5,40,30",
        "--deemphasize-mask",
        files["mask"],
        "--explain",
        "--params-out",
        str(tmp_path / "p.npz"),
    )
    text = capsys.readouterr().out
    assert code == 0, text
    assert "emphasized:" in text and "de-emphasized:" in text and "elsewhere:" in text
    params = np.load(tmp_path / "p.npz")
    assert params["fields"].shape == (30, 42, NUM_OPERATORS)  # G ran at its work size, 42
    assert set(OPERATOR_NAMES) <= set(params.files)
    figure = Image.open(tmp_path / "out_figure.png")
    assert figure.width > 5.5 * figure.height * W / H / 1.2  # six panels: the exposure panel
    assert Image.open(out).size == (W, H)


def test_strength_zero_returns_the_photo_bit_for_bit(files, tmp_path):
    out = tmp_path / "same.png"
    assert (
        _edit(files, out, "--emphasize-mask", files["mask"], "--strength", "0", "--no-figure") == 0
    )
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(files["photo"])))


def test_a_mask_of_another_size_is_resized_with_a_warning(files, tmp_path, capsys):
    assert (
        _edit(files, tmp_path / "o.png", "--emphasize-mask", files["mask_small"], "--no-figure")
        == 0
    )
    assert "resizing the mask" in capsys.readouterr().err


def test_explain_needs_the_operator_head_and_nothing_is_written(files, tmp_path, capsys):
    out = tmp_path / "never.png"
    assert _edit(files, out, "--emphasize", "1,1,9,9", "--explain", model="residual") == 2
    assert "operator head" in capsys.readouterr().err and not out.exists()
    assert _edit(files, out, "--emphasize", "1,1,9,9", "--params-out", "p.txt") == 2
    assert ".npz" in capsys.readouterr().err and not out.exists()


def test_refine_follows_the_guidance_more_and_needs_the_operator_head(files, tmp_path, capsys):
    plain, refined = tmp_path / "plain.npz", tmp_path / "refined.npz"
    for out, extra in ((plain, ()), (refined, ("--refine", "8"))):
        args = ("--emphasize-mask", files["mask"], "--no-figure", "--params-out", str(out))
        assert _edit(files, tmp_path / "o.png", *args, *extra) == 0
    assert not np.array_equal(np.load(plain)["fields"], np.load(refined)["fields"])
    # refinement also sets clarity: an eighth field, and its setting saved beside the rest
    assert np.load(plain)["fields"].shape[-1] == 7 and "clarity" not in np.load(plain)
    assert np.load(refined)["fields"].shape[-1] == 8 and "clarity" in np.load(refined)
    out = tmp_path / "never.png"
    assert _edit(files, out, "--emphasize", "1,1,9,9", "--refine", "3", model="residual") == 2
    assert "operator head" in capsys.readouterr().err and not out.exists()
    assert _edit(files, out, "--emphasize", "1,1,9,9", "--refine", "-1") == 2
    assert "--refine" in capsys.readouterr().err and not out.exists()


def test_explain_settings_and_words():
    fields = np.zeros((4, 6, NUM_OPERATORS), np.float32)
    fields[:2, :, OPERATOR_NAMES.index("exposure")] = np.arctanh(0.4)  # +0.4 EV on top
    fields[:2, :, OPERATOR_NAMES.index("saturation")] = np.arctanh(np.log2(1.25))
    settings = operator_settings(fields)
    assert np.isclose(settings["exposure"][0, 0], 0.4) and settings["exposure"][3, 0] == 0
    top = np.zeros((4, 6), bool)
    top[:2] = True
    summary = explain(fields, {"top": top, "bottom": ~top})
    assert describe(summary["top"]) == "+0.40 EV, saturation x1.25"
    assert describe(summary["bottom"]) == "unchanged"
    # refined fields have an eighth, clarity
    refined = np.concatenate([fields, np.zeros_like(fields[..., :1])], axis=-1)
    refined[2:, :, 7] = np.arctanh(-0.3)
    summary = explain(refined, {"top": top, "bottom": ~top})
    assert describe(summary["bottom"]) == "clarity -0.30 (less local contrast)"
    assert describe(summary["top"]) == "+0.40 EV, saturation x1.25"
    with pytest.raises(InputError, match=r"\(h, w, 7\) or \(h, w, 8\)"):
        operator_settings(fields[..., :5])
