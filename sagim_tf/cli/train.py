"""``sagim train --config FILE [--set key=value ...]``: train SaGIM on SAM with model.fit."""

from __future__ import annotations

NAME = "train"
HELP = "train SaGIM on a SAM dataset from a YAML/JSON config (resumes an interrupted run)"


def add_arguments(parser):
    parser.add_argument("--config", help="YAML or JSON config; omitted: all defaults")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config field, e.g. --set train.epochs=3 --set losses.adv=0 (repeatable)",
    )
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config and exit without training")


def run(args) -> int:
    import yaml

    from sagim_tf.training.config import load_config, to_dict

    cfg = load_config(args.config, args.overrides)  # fails before any work on a bad key
    if args.print_config:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0
    from sagim_tf.training.run import run_training

    summary = run_training(cfg)
    print(f"Run folder:      {summary['run_dir']}")
    for key, path in summary["outputs"].items():
        print(f"{key + ':':16} {path}")
    print(f"TensorBoard:     tensorboard --logdir {summary['run_dir']}/logs")
    return 0
