"""``sagim evaluate``: score a trained model and the baselines on a SAM split (paper Table 1).

Writes ``results.json`` (settings, per-method aggregates, one row per image and method),
``results.md`` (Table 1 layout: methods as rows; C1 and C2 per judge, MSE, PSNR) and
``examples/<method>.png`` to ``--out``, and prints the table. See docs/evaluation.md.
"""

from __future__ import annotations

import sys

from sagim_tf.baselines import BASELINES
from sagim_tf.utils.errors import ConfigError

DEFAULT_METHODS = ("sagim", *BASELINES)
KNOWN_METHODS = (*DEFAULT_METHODS, "identity")

NAME = "evaluate"
HELP = "evaluate a trained model and the baselines on a SAM split (Table 1)"


def add_arguments(parser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        metavar="PATH",
        help=".keras file of a trained SaGIM (sagim.keras) or a bare generator (generator.keras)",
    )
    parser.add_argument(
        "--data", required=True, metavar="SAMDIR", help="a `sagim build-sam` output folder"
    )
    parser.add_argument(
        "--split",
        default="test",
        choices=("test", "train"),
        help="which split to evaluate (default test)",
    )
    parser.add_argument(
        "--guidance",
        default="binary",
        choices=("binary", "continuous"),
        help="the guiding map G receives: binary (O_low's mask, as in Table 1; "
        "default) or continuous; the baselines always use the binary map",
    )
    parser.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        metavar="M,...",
        help="comma-separated methods among "
        + ", ".join(KNOWN_METHODS)
        + " (default "
        + ",".join(DEFAULT_METHODS)
        + ")",
    )
    parser.add_argument(
        "--judges",
        default=None,
        metavar="SPEC,...",
        help="comma-separated estimator specs to judge with (default: the data's "
        "estimator, spectral-residual and fine-grained)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="evaluate only the first N records of the split",
    )
    parser.add_argument(
        "--size",
        default=None,
        metavar="WxH",
        help="evaluate at this size (default: the data's stored size)",
    )
    parser.add_argument(
        "--examples",
        type=int,
        default=4,
        metavar="N",
        help="records drawn in each method's PNG grid (default 4)",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder for results.json, results.md and examples/",
    )
    parser.add_argument(
        "--refine-steps",
        type=int,
        default=0,
        metavar="STEPS",
        help="operator-head models: refine G's fields for each image by STEPS gradient steps "
        "against E before judging (sagim edit --refine); default 0",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def run(args) -> int:
    # lazy: the evaluation imports TensorFlow; `sagim --help` should not wait for it
    from sagim_tf.evaluation.report import format_table1
    from sagim_tf.evaluation.run import evaluate_model

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be a positive integer, got {args.limit}")
    if args.examples < 0:
        raise ConfigError(f"--examples must be >= 0, got {args.examples}")

    def warn(message):
        print(f"sagim evaluate: warning: {message}", file=sys.stderr, flush=True)

    result, paths = evaluate_model(
        args.model,
        args.data,
        split=args.split,
        guidance=args.guidance,
        methods=args.methods,
        judges=args.judges,
        limit=args.limit,
        out_dir=args.out,
        progress=not args.no_progress,
        size=args.size,
        n_examples=args.examples,
        warn=warn,
        refine_steps=args.refine_steps,
    )
    n = result.settings.get("n_records")
    print(f"\n{n} image(s) of {args.data} ({args.split}), guidance {args.guidance}\n")
    print(format_table1(result.aggregates, result.judges, result.methods))
    print()
    print(f"sagim evaluate: wrote {paths['json']}")
    print(f"sagim evaluate: wrote {paths['markdown']}")
    for method, path in paths.get("grids", {}).items():
        print(f"sagim evaluate: wrote {path} ({method})")
    if result.settings.get("warnings"):
        print(
            f"sagim evaluate: {len(result.settings['warnings'])} warning(s), see above and "
            f"{paths['markdown']}"
        )
    return 0
