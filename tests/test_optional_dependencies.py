"""Dependencies by use: the core runs without the optional extras, and a feature that needs
one says which extra to install.

A subprocess hides the extras' packages (grpcio, tensorflow-serving-api, ai-edge-litert,
pycocotools) behind an import hook, as if only ``pip install sagim-tf`` had run, then
imports every core module and tries each optional feature.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The packages of each extra in setup.cfg, by their import names.
EXTRAS = {
    "serving": ("grpc", "tensorflow_serving"),
    "tflite": ("ai_edge_litert",),
    "coco": ("pycocotools",),
}

# What `pip install sagim-tf` alone must cover: import, train, edit, evaluate, export to a
# SavedModel, and the command line (whose subcommands import their features lazily).
CORE_MODULES = (
    "sagim_tf",
    "sagim_tf.cli",
    "sagim_tf.data.pipeline",
    "sagim_tf.data.sam.builder",
    "sagim_tf.evaluation.run",
    "sagim_tf.export",
    "sagim_tf.inference.editor",
    "sagim_tf.models.sagim",
    "sagim_tf.training.run",
)

# Each feature that needs an extra, as a statement run with the extra hidden.
FEATURES = {
    "serving": "import sagim_tf.serving",
    "tflite": "from sagim_tf.export import TFLiteRunner; TFLiteRunner('missing.tflite')",
    "coco": "import sagim_tf.data.synth_coco",
    # The demo builds a synthetic COCO set and SAM from it: it is a feature of the coco extra.
    "coco (demo)": "import sagim_tf.workflows.demo",
}

SCRIPT = textwrap.dedent(
    """
    import importlib, importlib.abc, json, sys, traceback

    HIDDEN = {hidden!r}

    class HideExtras(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in HIDDEN:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, HideExtras())
    result = {{"core": {{}}, "features": {{}}}}
    for module in {core!r}:
        try:
            importlib.import_module(module)
            result["core"][module] = None
        except Exception:
            result["core"][module] = traceback.format_exc(limit=-3)
    for extra, statement in {features!r}.items():
        try:
            exec(statement)
            result["features"][extra] = "no error"
        except Exception as exc:
            result["features"][extra] = f"{{type(exc).__name__}}: {{exc}}"
    print("RESULT" + json.dumps(result))
    """
)


@pytest.fixture(scope="module")
def without_extras():
    hidden = sorted({name for names in EXTRAS.values() for name in names})
    script = SCRIPT.format(hidden=hidden, core=CORE_MODULES, features=FEATURES)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert lines, f"the subprocess failed:\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT") :])


@pytest.mark.slow
def test_core_imports_without_any_extra(without_extras):
    failed = {module: error for module, error in without_extras["core"].items() if error}
    assert not failed, "core modules need an optional extra:\n" + "\n".join(failed.values())


# Guards not yet written (in modules other engineers own): until each is in place its case is
# an expected failure. strict=True: once a guard lands, the case passes and its entry must go.
GUARD_PENDING: dict = {}


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(
            extra,
            marks=pytest.mark.xfail(
                extra in GUARD_PENDING,
                reason=f"guard pending in {GUARD_PENDING.get(extra)}",
                strict=True,
            ),
        )
        for extra in sorted(FEATURES)
    ],
)
def test_a_missing_extra_names_its_install_command(without_extras, extra):
    message = without_extras["features"][extra]
    install = f'pip install "sagim-tf[{extra.split()[0]}]"'
    assert install in message, message
