"""``sagim export`` end to end, its parity check and errors, and export/README.md's commands."""

import os
import re
import shlex

import pytest

from sagim_tf.cli import build_parser, main
from sagim_tf.cli import export as export_cli
from sagim_tf.export.loading import load_export_source
from sagim_tf.export.parity import check_parity
from sagim_tf.export.tflite import DEFAULT_FIXED_SIZE, TFLITE_FORMATS
from sagim_tf.models.generator import SaGIMGenerator
from sagim_tf.utils.errors import ExportError
from tests.export_helpers import (
    README,
    shared_savedmodel,
    tiny_generator,
    tiny_operator_generator,
)
from tests.helpers import tiny_sagim


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "g.keras"
    tiny_generator().save(path)
    return str(path)


def test_export_savedmodel_and_tflite_with_parity_check(model_path, tmp_path, capsys):
    out = tmp_path / "export"
    rc = main(
        [
            "export",
            "--model",
            model_path,
            "--out",
            str(out),
            "--version",
            "4",
            "--formats",
            "savedmodel,tflite",
            "--tflite-size",
            "32",
            "24",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0, text
    assert (out / "sagim" / "4" / "saved_model.pb").is_file()
    assert 'name: "sagim"' in (out / "models.config").read_text()
    assert sorted(os.listdir(out / "tflite")) == ["sagim_fp32.tflite", "sagim_fp32_32x24.tflite"]
    assert "parity with Keras: savedmodel" in text and "tflite max|diff|" in text
    assert "signatures   serving_default, edit_uint8\n" in text
    assert "holds only G, so edit_masks is skipped; pass --estimator" in text


@pytest.fixture(scope="module")
def sagim_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("sagim_model") / "sagim.keras"
    model = tiny_sagim()
    model.build()
    model.save(path)
    return path


def test_which_estimator_an_export_gets(sagim_path, model_path):
    source = load_export_source(sagim_path)
    assert source.estimator is not None and source.note == ""  # the SaGIM's own E
    assert isinstance(source.generator, SaGIMGenerator)
    none = load_export_source(sagim_path, "none")
    assert none.estimator is None and "--estimator none" in none.note
    bare = load_export_source(model_path)
    assert bare.estimator is None and "--estimator SPEC" in bare.note
    assert load_export_source(model_path, "itti-koch").estimator.name == "itti_koch"


def test_export_a_sagim_file_adds_edit_masks_with_its_own_estimator(sagim_path, tmp_path, capsys):
    out = tmp_path / "export"
    argv = ["export", "--model", str(sagim_path), "--out", str(out), "--formats", "savedmodel"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "signatures   serving_default, edit_uint8, edit_masks" in text
    assert "savedmodel:edit_masks max|diff|" in text


@pytest.mark.slow
def test_export_an_operator_head_g_with_itti_koch(tmp_path, capsys):
    tiny_operator_generator().save(tmp_path / "g.keras")
    out = tmp_path / "export"
    argv = ["export", "--model", str(tmp_path / "g.keras"), "--out", str(out)]
    argv += ["--formats", "savedmodel,tflite", "--tflite-size", "32", "24"]
    assert main(argv + ["--estimator", "itti-koch"]) == 0
    text = capsys.readouterr().out
    assert "signatures   serving_default, edit_uint8, fields, edit_masks" in text
    assert sorted(os.listdir(out / "tflite")) == [
        "sagim_fields_fp32.tflite",
        "sagim_fields_fp32_32x24.tflite",
        "sagim_fp32.tflite",
        "sagim_fp32_32x24.tflite",
    ]
    for key in ("savedmodel:fields", "savedmodel:edit_masks", "tflite:fields"):
        assert f"{key} max|diff|" in text


def test_an_estimator_that_cannot_be_in_a_graph_is_an_error(model_path, tmp_path, capsys):
    argv = ["export", "--model", model_path, "--out", str(tmp_path / "export")]
    assert main(argv + ["--estimator", "spectral-residual"]) == 2
    err = capsys.readouterr().err
    assert "--estimator spectral-residual" in err and "cannot be inside a SavedModel" in err
    assert main(argv + ["--estimator", "no-such-estimator"]) == 2
    assert "unknown estimator" in capsys.readouterr().err
    assert not (tmp_path / "export" / "sagim").exists()


@pytest.mark.slow
def test_export_all_formats_from_a_sagim_file(tmp_path, capsys):
    model = tiny_sagim()
    model.build()
    model.save(tmp_path / "sagim.keras")
    out = tmp_path / "export"
    rc = main(["export", "--model", str(tmp_path / "sagim.keras"), "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert (out / "sagim" / "1" / "saved_model.pb").is_file()
    assert sorted(os.listdir(out / "tflite")) == sorted(
        f"sagim_{tag}{size}.tflite" for tag in ("fp32", "fp16", "int8") for size in ("", "_256x192")
    )
    assert "tflite-int8 PSNR" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["--formats", "savedmodel,onnx"], "unknown"),
        (["--formats", ""], "unknown"),
        (["--model", "MISSING"], "not found"),
        (["--name", "a b"], "model name"),
        (["--version", "0"], "positive"),
        (["--formats", "tflite", "--tflite-size", "0", "10"], "positive"),
    ],
)
def test_export_errors_are_messages(model_path, tmp_path, capsys, args, message):
    argv = ["export", "--model", model_path, "--out", str(tmp_path / "export")]
    if "--model" in args:
        argv = ["export", "--out", str(tmp_path / "export")] + [
            str(tmp_path / "missing.keras") if a == "MISSING" else a for a in args
        ]
    else:
        argv += args
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "sagim export: error:" in err and message in err


def test_serve_missing_base_path_is_a_message(tmp_path, capsys):
    assert main(["serve", "--model-base-path", str(tmp_path / "nothing"), "--port", "0"]) == 2
    assert "model base path not found" in capsys.readouterr().err


def test_parity_check_refuses_a_file_of_another_model(tmp_path_factory):
    g, path, _ = shared_savedmodel(tmp_path_factory)
    report = check_parity(g, {"savedmodel": [path]})
    assert report["savedmodel"] <= 1e-5  # the exported G itself: float32 reordering only
    with pytest.raises(ExportError, match="savedmodel max"):
        check_parity(tiny_generator(seed=1), {"savedmodel": [path]})


def test_a_version_that_fails_parity_is_not_published(model_path, tmp_path, capsys, monkeypatch):
    from sagim_tf.export import parity

    # a threshold below any difference: every file fails the check
    monkeypatch.setitem(parity.TOLERANCES, "savedmodel", -1.0)
    out = tmp_path / "export"
    argv = ["export", "--model", model_path, "--out", str(out), "--formats", "savedmodel"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "version 1 was not published" in err and "savedmodel max |diff|" in err
    assert os.listdir(out / "sagim") == []  # nothing a server could load, nothing hidden
    assert main(argv + ["--no-check"]) == 0  # the operator's explicit choice
    assert os.listdir(out / "sagim") == ["1"]


def test_tflite_files_that_fail_parity_are_not_published(model_path, tmp_path, capsys, monkeypatch):
    from sagim_tf.export import parity

    out = tmp_path / "export"
    argv = ["export", "--model", model_path, "--out", str(out), "--formats", "tflite"]
    argv += ["--tflite-size", "32", "24"]
    assert main(argv) == 0
    capsys.readouterr()
    good = {name: (out / "tflite" / name).read_bytes() for name in os.listdir(out / "tflite")}
    other = tmp_path / "other.keras"  # another model: its files would differ from these
    tiny_generator(seed=1).save(other)
    monkeypatch.setitem(parity.TOLERANCES, "tflite", -1.0)  # every file fails the check now
    assert main([a if a != model_path else str(other) for a in argv]) == 2
    assert "tflite" in capsys.readouterr().err
    # the earlier export's files are untouched, and nothing half-written or hidden is left
    assert {
        name: (out / "tflite" / name).read_bytes() for name in os.listdir(out / "tflite")
    } == good


def _readme_commands():
    """Each ``sagim ...`` command in export/README.md's shell blocks, as an argv list."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    return [
        shlex.split(line.split("#")[0])[1:]
        for line in text.splitlines()
        if line.strip().startswith("sagim ")
    ]


def test_readme_commands_parse():
    commands = _readme_commands()
    assert {argv[0] for argv in commands} >= {"export", "serve"}
    for argv in commands:
        args = build_parser(argv[0]).parse_args(argv)  # SystemExit on an unknown flag
        assert args.command == argv[0]


def test_cli_names_match_the_exporter():
    assert export_cli.ALL_FORMATS == ("savedmodel", *TFLITE_FORMATS)
    assert export_cli.DEFAULT_FIXED_SIZE == DEFAULT_FIXED_SIZE
