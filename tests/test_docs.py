"""The documentation runs: every ```python block of the READMEs and docs/*.md, and every
``sagim COMMAND --flag`` the docs name, checked against the real command line.

Python blocks run in a fresh temporary directory, in this process (TensorFlow is imported
once). A block can ask for tiny stand-ins with an HTML comment directly above its fence:

    <!-- doc-test: setup tiny-sam tiny-model -->

``tiny-sam`` puts the shared tiny SAM set at ``data/sam`` and ``data/sam-synth`` (read only); ``tiny-model`` writes
a tiny trained-shape ``sagim.keras`` and a 320x240 ``photo.jpg``. A block that cannot run
here (it needs a GPU, a download, hours) is marked, with the reason, as

    <!-- doc-test: skip (needs MS-COCO) -->

and is reported as a skip. Commands in ```bash blocks, in fences without a language and in
inline code spans are parsed, not run: the subcommand must exist and each ``--flag`` must be
one that ``sagim COMMAND --help`` lists.
"""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import shutil

import pytest

from tests.test_architecture import FLOORS

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "export" / "README.md",
    ROOT / "data" / "README.md",
]

FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
MARKER = re.compile(r"<!--\s*doc-test:\s*(skip|setup)\b(.*?)-->\s*$")
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
SETUPS = ("tiny-sam", "tiny-model")


def _blocks():
    """Yield (path, line, language, code, marker) for every fenced block of the docs."""
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            above = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = MARKER.search(above)
            yield path, line, match.group(1).lower(), match.group(2), marker


def _python_blocks():
    params = []
    for path, line, lang, code, marker in _blocks():
        if lang != "python":
            continue
        name = f"{path.relative_to(ROOT)}:{line}"
        kind = marker.group(1) if marker else None
        arg = marker.group(2).strip() if marker else ""
        params.append(pytest.param(code, kind, arg, id=name))
    return params


PYTHON_BLOCKS = _python_blocks()


@pytest.fixture(scope="module")
def tiny_model_files(tmp_path_factory):
    """A tiny SaGIM saved as ``sagim.keras`` and a real photograph, made once per module."""
    import numpy as np
    import skimage.data
    from PIL import Image

    from tests.helpers import tiny_sagim

    root = tmp_path_factory.mktemp("doc-model")
    model = tiny_sagim(seed=0)
    model.compile()
    model.save(root / "sagim.keras")
    photo = Image.fromarray(np.asarray(skimage.data.astronaut())).resize((320, 240))
    photo.save(root / "photo.jpg", quality=90)
    return root


def test_every_marker_is_known_and_has_a_reason():
    for path, line, _lang, _code, marker in _blocks():
        if marker is None:
            continue
        where = f"{path.relative_to(ROOT)}:{line}"
        kind, arg = marker.group(1), marker.group(2).strip()
        if kind == "skip":
            assert re.fullmatch(r"\(.+\)", arg), f"{where}: a skip needs a reason in parentheses"
        else:
            unknown = set(arg.split()) - set(SETUPS)
            assert arg and not unknown, f"{where}: unknown setup {sorted(unknown)}"


def test_there_are_python_blocks_and_most_run():
    kinds = [p.values[1] for p in PYTHON_BLOCKS]
    skipped = kinds.count("skip")
    print(f"doc-test: {len(kinds)} python blocks, {skipped} marked skip")
    assert len(kinds) >= 4, "the docs lost their Python examples"
    # A skip is for what cannot run here; most examples must run.
    assert skipped <= len(kinds) // 2, f"{skipped} of {len(kinds)} python blocks are skipped"


@pytest.mark.parametrize("code, kind, arg", PYTHON_BLOCKS)
def test_python_block_runs(code, kind, arg, tmp_path, monkeypatch, request):
    if kind == "skip":
        pytest.skip(f"marked in the docs: {arg.strip('()')}")
    monkeypatch.chdir(tmp_path)
    setups = arg.split() if kind == "setup" else []
    if "tiny-sam" in setups:
        data_dir, _ = request.getfixturevalue("tiny_sam")
        (tmp_path / "data").mkdir()
        for name in ("sam", "sam-synth"):  # the names the docs use
            os.symlink(data_dir, tmp_path / "data" / name)
    if "tiny-model" in setups:
        source = request.getfixturevalue("tiny_model_files")
        for name in ("sagim.keras", "photo.jpg"):
            shutil.copy(source / name, tmp_path / name)
    exec(compile(code, request.node.name, "exec"), {"__name__": "__doc_test__"})


# ---------------------------------------------------------------- command lines


def _shell_commands(code: str):
    """Split shell text into commands: continuations joined, comments dropped."""
    code = code.replace("\\\n", " ")
    for line in code.splitlines():
        line = line.split(" #", 1)[0]
        if line.lstrip().startswith("#"):
            continue
        yield from re.split(r"&&|\|\||;|\|", line)


def _sagim_invocations(docs=None):
    """(where, argv after the program name) for every sagim command the docs name.

    ``docs`` maps a name to markdown text; defaults to README.md and docs/*.md.
    """
    if docs is None:
        docs = {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in DOCS}
    found = []
    for path, text in docs.items():
        sources = []
        for match in FENCE.finditer(text):
            if match.group(1).lower() in ("bash", "sh", "shell", "console", ""):
                line = text.count("\n", 0, match.start()) + 1
                sources.append((line, match.group(2)))
        prose = FENCE.sub("", text)
        for match in INLINE.finditer(prose):
            sources.append((None, match.group(1)))
        for line, code in sources:
            for command in _shell_commands(code):
                words = command.replace("[", " ").replace("]", " ").split()
                for i, word in enumerate(words):
                    if word == "sagim" or (word == "sagim_tf" and words[i - 1 : i] == ["-m"]):
                        where = path + (f":{line}" if line else "")
                        found.append((where, words[i + 1 :]))
                        break
    return found


def _script_invocations():
    """(where, script path, argv) for every ``python scripts/NAME.py ...`` the docs name."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        where = str(path.relative_to(ROOT))
        for command in _shell_commands(text.replace("`", "\n")):
            words = command.replace("[", " ").replace("]", " ").split()
            for i, word in enumerate(words[:-1]):
                if word in ("python", "python3") and re.fullmatch(r"scripts/\w+\.py", words[i + 1]):
                    found.append((where, words[i + 1], words[i + 2 :]))
                    break
    return found


def _option_strings(parser) -> set[str]:
    return {opt for action in parser._actions for opt in action.option_strings}


def test_docs_name_sagim_commands():
    assert len(_sagim_invocations()) >= 10


def _command_problems(invocations) -> list[str]:
    from sagim_tf import cli

    names = cli._discover()
    top = _option_strings(cli.build_parser())
    problems = []
    for where, words in invocations:
        words = [w for w in words if not re.fullmatch(r"[A-Z]+|\.\.\.|COMMAND", w)]
        command = next((w for w in words if not w.startswith("-")), None)
        head = words[: words.index(command)] if command else words
        for flag in head:
            if flag.split("=")[0] not in top:
                problems.append(f"{where}: sagim {flag}: no such option")
        if command is None:
            continue
        if command not in names:
            problems.append(f"{where}: sagim {command}: no such command")
            continue
        parser = cli.build_parser(command)
        sub = parser._subparsers._group_actions[0].choices[command]
        options = _option_strings(sub)
        for word in words[words.index(command) + 1 :]:
            if re.match(r"--?[A-Za-z]", word):
                flag = word.split("=")[0]
                if flag not in options:
                    problems.append(f"{where}: sagim {command} {flag}: no such option")
    return problems


def test_named_commands_and_flags_exist():
    problems = _command_problems(_sagim_invocations())
    assert not problems, "\n".join(problems)


def test_command_check_catches_wrong_commands_and_flags():
    doc = (
        "Run `sagim edit --image a.png --no-such-flag 1` or\n\n"
        "```bash\npython -m sagim_tf --loud nosuchcommand --x \\\n  --y\n```\n"
    )
    invocations = _sagim_invocations({"fake.md": doc})
    assert invocations == [
        ("fake.md:3", ["--loud", "nosuchcommand", "--x", "--y"]),
        ("fake.md", ["edit", "--image", "a.png", "--no-such-flag", "1"]),
    ]
    problems = _command_problems(invocations)
    assert problems == [
        "fake.md:3: sagim --loud: no such option",
        "fake.md:3: sagim nosuchcommand: no such command",
        "fake.md: sagim edit --no-such-flag: no such option",
    ]


def test_script_flags_exist():
    """Each ``--flag`` given to a script in the docs is one its ``--help`` lists."""
    import subprocess
    import sys

    invocations = _script_invocations()
    assert {script for _, script, _ in invocations} >= {"scripts/train.py", "scripts/bench.py"}
    helps = {}
    problems = []
    for where, script, words in invocations:
        assert (ROOT / script).exists(), f"{where}: {script} does not exist"
        if not any(w.startswith("--") for w in words):
            continue  # only pay for a --help (a TensorFlow import) where flags are named
        if script not in helps:
            helps[script] = subprocess.run(
                [sys.executable, str(ROOT / script), "--help"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
            ).stdout
        for word in words:
            flag = word.split("=")[0]
            if re.match(r"--[A-Za-z]", flag) and not re.search(
                rf"{re.escape(flag)}\b", helps[script]
            ):
                problems.append(f"{where}: {script} {flag}: not in its --help")
    assert not problems, "\n".join(problems)


def test_shell_splitting():
    commands = list(_shell_commands("a --x \\\n  --y && sagim b --z  # sagim c --w\n# sagim d"))
    assert [shlex.split(c) for c in commands] == [["a", "--x", "--y"], ["sagim", "b", "--z"]]


def test_architecture_lists_every_module():
    """docs/architecture.md's module tree names every module of the package."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    tree = next(m.group(2) for m in FENCE.finditer(text) if m.group(2).startswith("sagim_tf/"))
    named = set(re.findall(r"[\w/]+\.py", tree))
    package = ROOT / "sagim_tf"
    missing = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if rel.parts[0] == "cli" or (rel.name == "__init__.py" and len(rel.parts) > 1):
            continue  # cli/ is one line; a package's __init__ is its folder's line
        if rel.name not in named and str(rel.relative_to(*rel.parts[:1])) not in named:
            missing.append(str(rel))
    assert not missing, f"docs/architecture.md does not describe {missing}"
    for floor in FLOORS:
        for prefix in floor:
            assert prefix.removeprefix("sagim_tf.") in text, f"{prefix} missing from the floors"


def _named_code_references():
    """(where, reference) for each ``sagim_tf/...`` path and ``sagim_tf.x.y`` name in the docs."""
    found = []
    for path in DOCS:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{number}"
            for ref in re.findall(r"\bsagim_tf(?:[/.][A-Za-z_]\w*)+(?:\.py)?/?", line):
                found.append((where, ref.rstrip("/")))
            for module, names in re.findall(r"from (sagim_tf[\w.]*) import ([\w, ]+)", line):
                found += [
                    (where, f"{module}.{name.strip()}") for name in names.split(",") if name.strip()
                ]
    return found


def _resolves(ref: str) -> bool:
    import importlib

    if "/" in ref:
        return (ROOT / ref).exists()
    parts = ref.split(".")
    for cut in range(len(parts), 0, -1):
        module = ".".join(parts[:cut])
        base = ROOT.joinpath(*parts[:cut])
        if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
            obj = importlib.import_module(module)
            for name in parts[cut:]:
                if not hasattr(obj, name):
                    return False
                obj = getattr(obj, name)
            return True
    return False


def test_code_the_docs_name_exists():
    refs = _named_code_references()
    assert len(refs) >= 20
    assert not _resolves("sagim_tf/trainer.py") and not _resolves("sagim_tf.inference.nothing")
    missing = [f"{where}: {ref}" for where, ref in refs if not _resolves(ref)]
    assert not missing, "the docs name code that does not exist:\n" + "\n".join(missing)
