"""A small evaluation run: methods x judges over generated records, then the written report."""

import json

import numpy as np
import pytest
from PIL import Image

from sagim_tf.evaluation import (
    baseline_methods,
    evaluate_methods,
    format_ablation_table,
    identity_method,
    write_report,
)
from sagim_tf.utils.errors import ConfigError, InputError
from tests.eval_helpers import JUDGES, records


@pytest.fixture(scope="module")
def result():
    methods = {"identity": identity_method, **baseline_methods(["wsr"])}
    return evaluate_methods(records(4), methods, JUDGES, progress=False)


def test_rows_and_aggregates(result):
    assert result.methods == ["identity", "wsr"]
    assert result.judges == list(JUDGES)
    assert len(result.rows) == 8
    assert [r["id"] for r in result.rows[:2]] == ["synthetic-0", "synthetic-0"]
    ident = result.aggregates["identity"]
    assert ident["n"] == 4 and ident["mse"] == 0.0 and ident["changed_outside"] == 0.0
    # the photorealism measures: no edit is no residual and no cast; WSR edits show both
    assert ident["non_affine"] == 0.0 and ident["colour_cast_outside"] == 0.0
    assert 0.0 < result.aggregates["wsr"]["non_affine"] <= 1.0
    assert result.aggregates["wsr"]["colour_cast_outside"] > 0.0
    for j in JUDGES:
        assert ident["judges"][j]["c2"] == 0.0  # an unchanged image never satisfies C2
        assert result.aggregates["wsr"]["judges"][j]["c2"] > 0.0
        for m in result.methods:
            s = result.aggregates[m]["judges"][j]
            assert 0.0 <= s["c1"] <= 100.0 and 0.0 <= s["c2"] <= 100.0
            assert -1.0 <= s["cc"] <= 1.0 and s["kl"] >= 0.0
    wsr = result.aggregates["wsr"]
    assert wsr["mse"] > 0 and 0 < wsr["ssim"] < 1 and np.isfinite(wsr["psnr"])
    # WSR raises O_low's saliency on average under both judges
    for j in JUDGES:
        assert wsr["judges"][j]["low_after"] > wsr["judges"][j]["low_before"]
    assert len(result.examples) == 4
    ex = result.examples[0]
    assert set(ex["edited"]) == {"identity", "wsr"}
    assert ex["maps"]["lab-contrast"]["wsr"].shape == ex["image"].shape[:2]


def test_deterministic(result):
    again = evaluate_methods(
        records(4),
        {"identity": identity_method, **baseline_methods(["wsr"])},
        JUDGES,
        progress=False,
    )
    assert json.dumps(again.rows, default=str) == json.dumps(result.rows, default=str)


def test_write_report(result, tmp_path):
    paths = write_report(
        result,
        tmp_path,
        title="Synthetic check",
        ablation_variants=["identity", "wsr"],
        extra={"judges": list(JUDGES)},
    )
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["methods"] == ["identity", "wsr"] and len(data["rows"]) == 8
    assert data["aggregates"]["identity"]["psnr"] is None  # inf PSNR -> null, valid JSON
    assert data["run"]["judges"] == list(JUDGES)
    md = (tmp_path / "results.md").read_text()
    assert "# Synthetic check" in md
    assert (
        "| Method | spectral-residual C1 (%) | lab-contrast C1 (%) | spectral-residual C2 (%) | lab-contrast C2 (%) | MSE | PSNR (dB) | non-affine | ΔE outside | n |"
        in md
    )
    assert "| identity |" in md and "| wsr |" in md
    assert "| lab-contrast w/ C2 |" in md  # the ablation table
    for m in ("identity", "wsr"):
        png = Image.open(paths["grids"][m])
        assert png.format == "PNG" and png.size[0] > 5 * 100 and png.size[1] > 4 * 50


def test_ablation_table_shape():
    agg = {
        "full": {"judges": {"E": {"c1": 45.0, "c2": 66.4}}},
        "w/o Lcycle": {"judges": {"E": {"c1": 37.4, "c2": 63.3}}},
    }
    table = format_ablation_table(agg, ["E"])
    lines = table.splitlines()
    assert lines[0] == "| Guidance Consistency (%) | full | w/o Lcycle |"
    assert lines[2] == "| E w/ C1 | 45.0 | 37.4 |"
    assert lines[3] == "| E w/ C2 | 66.4 | 63.3 |"


def test_judge_and_method_outputs_are_checked():
    recs = records(1)

    class FakeTensor:  # a backend tensor: has .numpy()
        def __init__(self, a):
            self.a = a

        def numpy(self):
            return self.a

    def tensor_judge(images):
        return FakeTensor(np.full(images.shape[:3] + (1,), 0.5, np.float32))

    r = evaluate_methods(recs, {"id": identity_method}, {"t": tensor_judge}, progress=False)
    assert r.rows[0]["judges"]["t"]["c1"] is False

    with pytest.raises(InputError, match="judge 'small'"):
        evaluate_methods(
            recs,
            {"id": identity_method},
            {"small": lambda x: np.zeros((1, 4, 4, 1))},
            progress=False,
        )
    with pytest.raises(InputError, match="method 'crop'"):
        evaluate_methods(recs, {"crop": lambda i, b, g: i[:-1]}, JUDGES, progress=False)
    with pytest.raises(InputError, match="mask_high"):
        bad = dict(recs[0], mask_high=np.zeros((3, 3)))
        evaluate_methods([bad], {"id": identity_method}, JUDGES, progress=False)
    with pytest.raises(ConfigError):
        evaluate_methods(recs, {}, JUDGES, progress=False)
    with pytest.raises(ConfigError):
        baseline_methods(["wsr"], hag={"gain_in": 1.0})
