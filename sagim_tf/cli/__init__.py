"""The ``sagim`` command line.

Each subcommand lives in its own module under this package; a module there
that defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int`` becomes
``sagim NAME``. Modules are imported only when their command runs, so ``sagim --help``
stays quick and one broken command cannot take the others down.

Library code logs through ``logging.getLogger(__name__)``; the command line is where a
handler is configured: records of the ``sagim_tf`` loggers go to stderr at INFO (which
weights are in use, what was written where), ``sagim --quiet COMMAND`` shows warnings and
errors only, and ``sagim --verbose COMMAND`` adds DEBUG records.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import logging
import os
import pkgutil
import sys

from sagim_tf.utils.errors import SagimError

#: The logger whose records the command line shows: the parent of every library logger.
PACKAGE_LOGGER = "sagim_tf"
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def _discover() -> dict[str, tuple[str, str]]:
    """Map command name -> (module name, help) by reading module constants without importing."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        path = os.path.join(__path__[0], info.name + ".py")
        try:
            tree = ast.parse(open(path, encoding="utf-8").read())
        except (OSError, SyntaxError):
            continue
        consts = {}
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name) and target.id in ("NAME", "HELP"):
                    if isinstance(node.value, ast.Constant):
                        consts[target.id] = node.value.value
        if "NAME" in consts:
            found[consts["NAME"]] = (info.name, consts.get("HELP", ""))
    return found


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sagim", description="Saliency-guided image manipulation (SaGIM) tools."
    )
    # Own dest names, so that a subcommand's own --quiet/--verbose cannot overwrite them.
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-q",
        "--quiet",
        dest="log_quiet",
        action="store_true",
        help="log warnings and errors only (give it before the command)",
    )
    verbosity.add_argument(
        "-v",
        "--verbose",
        dest="log_verbose",
        action="store_true",
        help="also log DEBUG records (give it before the command)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in sorted(_discover().items()):
        p = sub.add_parser(name, help=help_text, description=help_text)
        if command == name:
            mod = importlib.import_module(f"sagim_tf.cli.{module}")
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser


def configure_logging(quiet: bool = False, verbose: bool = False) -> logging.Handler:
    """Send the ``sagim_tf`` loggers' records to stderr; returns the handler it installed.

    Args:
        quiet: bool. Show warnings and errors only. Defaults to `False`.
        verbose: bool. Show DEBUG records too. Defaults to `False`.
    """
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(level)
    logger = logging.getLogger(PACKAGE_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = _discover()
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in names else None)
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0 if not argv else 2
    logger = logging.getLogger(PACKAGE_LOGGER)
    old_level = logger.level
    handler = configure_logging(quiet=args.log_quiet, verbose=args.log_verbose)
    try:
        return int(args._run(args) or 0)
    except SagimError as exc:
        print(f"sagim {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sagim {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
