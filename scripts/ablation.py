#!/usr/bin/env python
"""Loss ablations (paper Table 2): ``python scripts/ablation.py [--experiment NAME] [--config FILE]``.

The config is a named experiment's defaults (e.g. ``paper``), then the file's keys, then
the ``--set`` overrides, as for ``sagim train``. Trains the variants full, no-cycle, no-adv
and no-color of that config (one loss weight set to 0 each; the registered
``ablation/*`` experiments are these variants of ``paper``) in ``<run_dir>/<variant>``,
evaluates them on the same records and judges, and
writes ``ablation.md`` (Table 2 layout), ``results.json``, ``results.md`` and example grids to
``--out`` (default ``<run_dir>/ablation``). Run it again after an interruption: finished
variants are reused and an interrupted one resumes. See docs/evaluation.md.
"""

import argparse
import os
import sys

# Use the sagim_tf of the checkout this script belongs to.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ablation.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--experiment",
        metavar="NAME",
        help="named experiment to start from, e.g. paper (omitted: the field defaults)",
    )
    parser.add_argument("--config", metavar="FILE", help="YAML/JSON overrides over the experiment")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override a config value, e.g. --set train.epochs=5 (repeatable)",
    )
    parser.add_argument(
        "--variants",
        default=None,
        metavar="V,...",
        help="subset of full,no-cycle,no-adv,no-color (default all)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="evaluate only the first N records of the split",
    )
    parser.add_argument("--split", default="test", choices=("test", "train"))
    parser.add_argument(
        "--guidance",
        default=None,
        choices=("binary", "continuous"),
        help="guidance G gets at evaluation (default: the config's data.guidance)",
    )
    parser.add_argument(
        "--judges",
        default=None,
        metavar="SPEC,...",
        help="estimator specs to judge with (default: the config's estimator, "
        "the data's, spectral-residual, fine-grained)",
    )
    parser.add_argument("--out", default=None, metavar="DIR", help="default <run_dir>/ablation")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    args = parser.parse_args(argv)
    if not (args.experiment or args.config):
        parser.error("give --experiment NAME, --config FILE, or both")

    # lazy: --help and argument errors answer without importing TensorFlow
    from sagim_tf.cli import configure_logging
    from sagim_tf.utils.errors import SagimError
    from sagim_tf.workflows.ablation import run_ablation

    configure_logging(quiet=args.quiet)
    try:
        summary = run_ablation(
            args.config,
            overrides=args.overrides,
            experiment=args.experiment,
            variants=args.variants,
            limit=args.limit,
            out_dir=args.out,
            split=args.split,
            guidance=args.guidance,
            judges=args.judges,
            progress=not args.no_progress,
        )
    except SagimError as exc:
        print(f"ablation: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ablation: interrupted (run the same command again to continue)", file=sys.stderr)
        return 130
    print()
    print(summary["table"])
    print()
    for key in ("ablation", "markdown", "json"):
        print(f"ablation: wrote {summary['paths'][key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
