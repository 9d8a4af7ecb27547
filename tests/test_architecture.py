"""The package's layering: every import inside ``sagim_tf`` points down (docs/architecture.md).

Each module belongs to one floor; a module may import modules of its own floor or of
lower floors, never of a higher one. Imports inside functions count too, so a lazy
import cannot hide an upward edge.
"""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "sagim_tf"

#: Floors from the ground up; a dotted prefix names the modules on that floor.
FLOORS = [
    ["sagim_tf.utils"],
    ["sagim_tf.layers", "sagim_tf.losses"],
    ["sagim_tf.estimators", "sagim_tf.baselines"],
    ["sagim_tf.guidance"],
    ["sagim_tf.models", "sagim_tf.data"],
    ["sagim_tf.inference"],
    ["sagim_tf.training"],
    ["sagim_tf.evaluation"],
    ["sagim_tf.export"],
    ["sagim_tf.serving", "sagim_tf.app"],
    ["sagim_tf.workflows"],
    ["sagim_tf.cli"],
]


def floor_of(module: str) -> int | None:
    best = None
    for level, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                best = level
    return best


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: pathlib.Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:  # ``from sagim_tf.x import submodule``
                yield node.lineno, f"{node.module}.{alias.name}"


def sagim_modules():
    return sorted(p for p in PACKAGE.rglob("*.py"))


def test_every_module_has_a_floor():
    missing = [
        module_name(p)
        for p in sagim_modules()
        if module_name(p) != "sagim_tf"
        and floor_of(module_name(p)) is None
        and module_name(p) != "sagim_tf.__main__"
    ]
    assert not missing, f"modules on no floor (add them to FLOORS): {missing}"


def test_imports_point_down():
    upward = []
    for path in sagim_modules():
        me = module_name(path)
        mine = floor_of(me)
        if mine is None:  # the package's face (sagim_tf/__init__.py, __main__) sits above all
            continue
        for line, target in imported_modules(path):
            if not target.startswith("sagim_tf"):
                continue
            theirs = floor_of(target)
            if theirs is not None and theirs > mine:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} {me} -> {target}")
    assert not upward, "imports from a lower floor to a higher one:\n" + "\n".join(
        sorted(set(upward))
    )
