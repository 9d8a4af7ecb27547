"""The ``sagim`` entry point: command discovery and the logging it configures."""

import logging
import subprocess
import sys
import types

import pytest

import sagim_tf
from sagim_tf import cli

FAKE = "sagim_tf.cli._fake_logging_command"


@pytest.fixture
def log_command(monkeypatch):
    """A ``sagim say`` command whose run logs one record per level through a library logger."""

    def run(args):
        log = logging.getLogger("sagim_tf.models.loading")
        log.debug("debug record")
        log.info("weights in use: none (seeded random)")
        log.warning("warning record")
        return 0

    module = types.ModuleType(FAKE)
    module.NAME, module.HELP = "say", "log three records"
    module.add_arguments = lambda parser: None
    module.run = run
    monkeypatch.setitem(sys.modules, FAKE, module)
    found = dict(cli._discover())
    found["say"] = ("_fake_logging_command", module.HELP)
    monkeypatch.setattr(cli, "_discover", lambda: found)


def test_info_records_reach_stderr(log_command, capsys):
    assert cli.main(["say"]) == 0
    err = capsys.readouterr().err
    assert "INFO sagim_tf.models.loading: weights in use" in err
    assert "warning record" in err
    assert "debug record" not in err


def test_quiet_shows_warnings_only(log_command, capsys):
    assert cli.main(["--quiet", "say"]) == 0
    err = capsys.readouterr().err
    assert "weights in use" not in err
    assert "WARNING sagim_tf.models.loading: warning record" in err


def test_verbose_shows_debug(log_command, capsys):
    assert cli.main(["-v", "say"]) == 0
    assert "DEBUG sagim_tf.models.loading: debug record" in capsys.readouterr().err


def test_handler_is_removed_after_the_command(log_command, capsys):
    before = list(logging.getLogger(cli.PACKAGE_LOGGER).handlers)
    cli.main(["say"])
    cli.main(["say"])
    assert logging.getLogger(cli.PACKAGE_LOGGER).handlers == before
    # One handler per run: the record is not duplicated by a handler left from the first run.
    assert capsys.readouterr().err.count("weights in use") == 2


def test_every_command_is_listed_and_parses_help(capsys):
    names = sorted(cli._discover())
    assert {"demo", "train", "edit", "evaluate", "export", "serve"} <= set(names)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--quiet" in out and all(name in out for name in names)


def test_no_command_prints_help():
    assert cli.main([]) == 0
    assert cli.main(["--quiet"]) == 2


def test_package_lists_its_public_names_without_importing_tensorflow():
    code = (
        "import sys, sagim_tf\n"
        "names = dir(sagim_tf)\n"
        "assert 'tensorflow' not in sys.modules, 'import sagim_tf imported TensorFlow'\n"
        "print(' '.join(names))\n"
        "print(sagim_tf.__doc__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    names, doc = out.split("\n", 1)
    for name in sagim_tf.__all__:
        assert name in names.split()
        assert name == "__version__" or f"``{name}``" in doc


def test_build_sam_out_is_never_an_input(tmp_path, capsys):
    """``sagim build-sam --out`` naming an image folder or the annotations: refused first."""
    images = tmp_path / "images"
    images.mkdir()
    notes = tmp_path / "instances.json"
    notes.write_text("{}")
    base = ["build-sam", "--images", str(images), "--annotations", str(notes)]
    base += ["--estimator", "itti-koch"]
    assert cli.main([*base, "--out", str(images)]) == 2
    assert "is an input" in capsys.readouterr().err
    assert cli.main([*base, "--out", str(notes)]) == 2
    assert "is an input" in capsys.readouterr().err and notes.read_text() == "{}"
    other = tmp_path / "other.txt"
    other.write_text("x")
    assert cli.main([*base, "--out", str(other)]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "instances.json", "other.txt"]
