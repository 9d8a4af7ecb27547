"""``sagim train [--experiment NAME] [--config FILE] [--set key=value ...]``: train SaGIM on SAM.

The config is resolved as the experiment's defaults, then the file, then the overrides,
then validated; ``--list-experiments`` names the registered experiments.
"""

from __future__ import annotations

import sys

import yaml

from sagim_tf.training.config import to_dict
from sagim_tf.training.experiments import list_experiments, load_experiment
from sagim_tf.utils.errors import Preempted

NAME = "train"
HELP = "train SaGIM on a SAM dataset from a named experiment and/or a YAML/JSON config (resumes)"


def add_arguments(parser):
    parser.add_argument(
        "--experiment",
        metavar="NAME",
        help="named experiment to start from, e.g. paper or demo-cpu (see --list-experiments); "
        "omitted: the config fields' defaults",
    )
    parser.add_argument("--config", help="YAML or JSON file of overrides over the experiment")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set train.epochs=3 --set losses.adv=0 (repeatable)",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config and exit without training",
    )
    parser.add_argument(
        "--list-experiments", action="store_true", help="list the named experiments and exit"
    )


def run(args) -> int:
    if args.list_experiments:
        print("\n".join(list_experiments()))
        return 0
    # Fails before any work on an unknown experiment, a bad key or a bad value.
    cfg = load_experiment(args.experiment, args.config, args.overrides)
    if args.print_config:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0
    # lazy: training imports TensorFlow; printing the config should not wait for it
    from sagim_tf.training.run import (
        run_training,
    )  # lazy: TensorFlow only when training, not for --print-config

    try:
        summary = run_training(cfg)
    except Preempted as exc:
        print(f"sagim train: {exc}", file=sys.stderr)
        return Preempted.EXIT_CODE
    print(f"Run folder:      {summary['run_dir']}")
    print(f"G steps:         {summary['g_steps']}")
    for key, path in summary["outputs"].items():
        print(f"{key + ':':16} {path}")
    print(f"TensorBoard:     tensorboard --logdir {summary['run_dir']}/logs")
    return 0
