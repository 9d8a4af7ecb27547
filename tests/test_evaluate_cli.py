"""`sagim evaluate`: files, table shape, grids, determinism, warnings and bad input."""

import json
import os

import keras
import pytest
import yaml
from PIL import Image

from sagim_tf.cli import main
from sagim_tf.data import read_manifest
from sagim_tf.estimators import build_estimator
from sagim_tf.evaluation.judges import default_judge_specs, judge_label, same_estimator
from sagim_tf.evaluation.run import (
    compatibility_warnings,
    evaluate_model,
    parse_size,
    training_size,
)
from sagim_tf.utils.errors import ConfigError, InputError
from tests.helpers import nudge_operator_head, tiny_sagim
from tests.sam_helpers import TEST_SPEC, contrast_estimator

LIMIT = 3
METHODS = ["sagim", "wsr", "hag", "oha", "operator-rule"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_sam):
    root = tmp_path_factory.mktemp("evalcli")
    data, _ = tiny_sam  # 4 test records at 32x24, built with TEST_SPEC
    manifest = read_manifest(data)
    model_path = os.path.join(str(root), "sagim.keras")
    tiny_sagim().save(model_path)
    return root, data, manifest, model_path


def _run(setup, out, *extra, capsys=None):
    root, data, manifest, model_path = setup
    argv = [
        "evaluate",
        "--model",
        model_path,
        "--data",
        data,
        "--limit",
        str(LIMIT),
        "--judges",
        f"{TEST_SPEC},spectral-residual",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]
    return main(argv)


@pytest.fixture(scope="module")
def first_run(setup, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-out")
    assert _run(setup, out) == 0
    return out


def test_results_json(first_run):
    doc = json.load(open(os.path.join(first_run, "results.json")))
    assert doc["methods"] == METHODS
    assert doc["judges"] == [TEST_SPEC, "spectral-residual"]
    assert len(doc["rows"]) == LIMIT * len(METHODS)
    assert {r["method"] for r in doc["rows"]} == set(METHODS)
    for row in doc["rows"]:
        assert set(row["judges"]) == {TEST_SPEC, "spectral-residual"}
        assert isinstance(row["judges"][TEST_SPEC]["c1"], bool)
    for m in METHODS:
        agg = doc["aggregates"][m]
        assert agg["n"] == LIMIT and 0 <= agg["judges"][TEST_SPEC]["c2"] <= 100
    s = doc["settings"]
    assert (s["split"], s["guidance"], s["limit"], s["size"]) == ("test", "binary", LIMIT, [32, 24])
    # tiny_sagim's E (a random conv) is not the data's estimator: said, and recorded.
    assert any("differs from the data's estimator" in w for w in s["warnings"])
    assert doc["run"]["model_kind"] == "sagim" and doc["run"]["data_estimator"] == TEST_SPEC


def test_results_md_table1(first_run):
    text = open(os.path.join(first_run, "results.md")).read()
    table = text.split("## Guidance Consistency and distortion (Table 1 layout)")[1].split("##")[0]
    lines = [ln for ln in table.strip().splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == [
        "Method",
        f"{TEST_SPEC} C1 (%)",
        "spectral-residual C1 (%)",
        f"{TEST_SPEC} C2 (%)",
        "spectral-residual C2 (%)",
        "MSE",
        "PSNR (dB)",
        "non-affine",
        "ΔE outside",
        "n",
    ]
    assert [ln.strip("|").split("|")[0].strip() for ln in lines[2:]] == METHODS
    assert "**Warning:**" in text


def test_grids(first_run):
    for m in METHODS:
        path = os.path.join(first_run, "examples", f"{m}.png")
        im = Image.open(path)
        # rows: examples (LIMIT of them); columns: original, guidance, edited, 2 per judge
        assert im.width > 7 * 100 and im.height > LIMIT * 100


def test_deterministic_and_stdout(setup, first_run, tmp_path, capsys):
    assert _run(setup, tmp_path) == 0
    out, err = capsys.readouterr()
    assert "| Method |" in out and "results.md" in out and "warning:" in err
    assert (
        open(os.path.join(first_run, "results.json"), "rb").read()
        == open(os.path.join(tmp_path, "results.json"), "rb").read()
    )


def test_bad_method(setup, tmp_path, capsys):
    assert _run(setup, tmp_path, "--methods", "sagim,magic") == 2
    err = capsys.readouterr().err
    assert "unknown method 'magic'" in err and "wsr" in err and "identity" in err
    assert not os.path.exists(os.path.join(tmp_path, "results.json"))


def test_missing_data(setup, tmp_path, capsys):
    root, data, manifest, model_path = setup
    code = main(
        [
            "evaluate",
            "--model",
            model_path,
            "--data",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_not_a_model(setup, tmp_path, capsys):
    root, data, manifest, model_path = setup
    other = str(tmp_path / "estimator.keras")
    inp = keras.Input((None, None, 3))
    keras.Model(inp, keras.layers.Conv2D(1, 1)(inp)).save(other)
    assert main(["evaluate", "--model", other, "--data", data, "--out", str(tmp_path / "o")]) == 2
    assert "not a SaGIM or a SaGIMGenerator" in capsys.readouterr().err
    text = tmp_path / "model.keras"
    text.write_text("nope")
    assert (
        main(["evaluate", "--model", str(text), "--data", data, "--out", str(tmp_path / "o")]) == 2
    )
    assert "not a .keras archive" in capsys.readouterr().err


def test_size_mismatch_warning_and_generator(setup, tmp_path):
    """A bare generator in a run folder whose config.yaml says another size and estimator."""
    root, data, manifest, model_path = setup
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    tiny_sagim().generator.save(str(run_dir / "generator.keras"))
    (run_dir / "config.yaml").write_text(
        yaml.safe_dump(
            {"estimator": "itti-koch", "data": {"image_size": {"height": 96, "width": 128}}}
        )
    )
    seen = []
    result, paths = evaluate_model(
        str(run_dir / "generator.keras"),
        data,
        methods="sagim,identity",
        judges=["spectral-residual"],
        limit=2,
        progress=False,
        warn=seen.append,
    )
    assert paths == {} and result.methods == ["sagim", "identity"] and len(result.rows) == 4
    assert any("trained with estimator 'itti-koch'" in w for w in seen)
    assert any("trained at 128x96" in w and "--size 128x96" in w for w in seen)
    assert result.aggregates["identity"]["judges"]["spectral-residual"]["c2"] == 0.0


def test_default_judges_and_helpers():
    assert default_judge_specs("itti-koch") == ["itti-koch", "spectral-residual", "fine-grained"]
    assert default_judge_specs("Spectral-Residual") == ["Spectral-Residual", "fine-grained"]
    assert judge_label("salgan:/w/salgan.weights.h5") == "salgan"
    assert (
        judge_label("keras:/a/x.keras", ["keras:/a/x.keras", "keras:/b/y.keras"]) == "keras:x.keras"
    )
    assert parse_size("64x48") == (64, 48) and parse_size(None) is None
    with pytest.raises(ConfigError):
        parse_size("64")


def test_api_errors(setup):
    root, data, manifest, model_path = setup
    with pytest.raises(ConfigError, match="known methods"):
        evaluate_model(model_path, data, methods=["sagim", "nope"], progress=False)
    with pytest.raises(ConfigError, match="judge 'nope'"):
        evaluate_model(model_path, data, methods=["wsr"], judges="nope", progress=False)
    with pytest.raises(ConfigError, match="needs a model"):
        evaluate_model(None, data, methods="sagim", progress=False)
    with pytest.raises(InputError, match="file not found"):
        evaluate_model(os.path.join(str(root), "missing.keras"), data, progress=False)


def test_refine_steps_refine_an_operator_head_and_are_refused_for_a_residual_one(setup, tmp_path):
    root, data, manifest, model_path = setup
    operators = tiny_sagim(head="operators")
    nudge_operator_head(operators.generator)
    path = str(tmp_path / "ops.keras")
    operators.save(path)

    def rows(steps):
        result, _ = evaluate_model(
            path,
            data,
            methods="sagim",
            judges=["spectral-residual"],
            limit=2,
            progress=False,
            refine_steps=steps,
        )
        return result

    plain, refined = rows(0), rows(3)
    assert refined.settings["refine_steps"] == 3 and plain.settings["refine_steps"] == 0
    assert plain.aggregates["sagim"]["mse"] != refined.aggregates["sagim"]["mse"]
    with pytest.raises(ConfigError, match="operator head"):
        evaluate_model(model_path, data, methods="sagim", progress=False, refine_steps=2)
    with pytest.raises(InputError, match="refine steps"):
        evaluate_model(path, data, methods="sagim", progress=False, refine_steps=-1)
    out = tmp_path / "out"
    assert _run((root, data, manifest, path), out, "--methods", "sagim", "--refine-steps", "2") == 0
    assert "refined by 2 steps" in (out / "results.md").read_text()


def test_training_size_reads_both_forms():
    assert training_size({"data": {"image_size": {"height": 96, "width": 128}}}) == (128, 96)
    assert training_size({"data": {"image_size": [128, 96]}}) == (128, 96)  # older [W, H]
    assert training_size({"data": {}}) is None and training_size(None) is None


def test_estimators_compared_by_config_not_name():
    """Two builds of one architecture match (whatever their automatic layer names); another
    architecture is reported, and so is a model whose E cannot be compared."""
    manifest = {"estimator": TEST_SPEC, "size": [32, 24]}
    same, other = contrast_estimator(), contrast_estimator()
    assert [x.name for x in same.layers] != [x.name for x in other.layers]  # automatic names
    assert same_estimator(same, other) is True
    assert compatibility_warnings({"estimator": same}, manifest, "d", other) == []
    itti = build_estimator("itti-koch")
    assert same_estimator(same, itti) is False
    (message,) = compatibility_warnings({"estimator": same}, manifest, "d", itti)
    assert "differs from the data's estimator" in message
    (message,) = compatibility_warnings({"estimator": same}, manifest, "d", None)
    assert "cannot be compared" in message
