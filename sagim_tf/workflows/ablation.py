"""Loss ablations (paper §4.4, Table 2): train variants of one config, evaluate, tabulate.

The variants are :data:`sagim_tf.training.experiments.ABLATION_VARIANTS`, made from one
:class:`~sagim_tf.training.config.ExperimentConfig` by
:func:`~sagim_tf.training.experiments.ablation_variant` (the same definition that the
registered ``ablation/*`` experiments use):

======== ======================== ======================
variant  change                   paper's column
======== ======================== ======================
full     none                     Ours
no-cycle ``losses.cycle = 0``     w/o L_cycle
no-adv   ``losses.adv = 0``       w/o L_adv
no-color ``losses.color = 0``     w/o L_color
======== ======================== ======================

each trained by :func:`sagim_tf.training.run.run_training` in ``<run_dir>/<variant>``. A
variant whose run folder already holds a finished run of the same config (``config.yaml``
equal to the variant's, and ``sagim.keras`` written after it) is reused, so the command can
be run again after an interruption and only the missing variants train (an interrupted
variant resumes from its checkpoints).

All variants are then evaluated as methods of one run, on the same records and judges,
and ``ablation.md`` (Table 2 layout: variants as columns, ``<judge> w/ C1|C2`` as rows) is
written with ``results.json``, ``results.md`` and the example grids. Progress and
warnings are log records of this module's logger.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

from sagim_tf.evaluation import run as evalrun
from sagim_tf.evaluation.evaluator import evaluate_methods
from sagim_tf.evaluation.judges import INDEPENDENT_JUDGES, build_judges, spec_key
from sagim_tf.evaluation.records import generator_method
from sagim_tf.evaluation.report import (
    PAPER_TABLE2,
    _fmt,
    _md_table,
    format_ablation_table,
    write_report,
)
from sagim_tf.training.config import config_from_dict, read_config_file, to_dict
from sagim_tf.training.experiments import (
    ABLATION_PAPER_COLUMNS,
    ABLATION_VARIANTS,
    ablation_variant,
    load_experiment,
)
from sagim_tf.training.run import run_training
from sagim_tf.utils.errors import ConfigError, InputError
from sagim_tf.utils.io import write_text

log = logging.getLogger(__name__)


def check_variants(names: Sequence[str] | str | None) -> list[str]:
    """The variant names, checked; None means all of them, in the paper's order."""
    if names is None:
        return list(ABLATION_VARIANTS)
    out = []
    for name in evalrun.parse_list(names, "variants"):
        if name not in ABLATION_VARIANTS:
            raise ConfigError(
                f"unknown ablation variant {name!r}; known: {', '.join(ABLATION_VARIANTS)}"
            )
        if name in out:
            raise ConfigError(f"ablation variant {name!r} is listed twice")
        out.append(name)
    return out


def variant_configs(cfg, variants: Sequence[str] | None = None) -> dict:
    """``{variant: config}``: ``cfg`` with one loss weight set to 0 and ``run_dir`` set to
    ``<cfg.run_dir>/<variant>`` (:func:`~sagim_tf.training.experiments.ablation_variant`)."""
    return {name: ablation_variant(cfg, name) for name in check_variants(variants)}


def finished_model(cfg) -> str | None:
    """``<run_dir>/sagim.keras`` if the run folder holds a finished run of exactly ``cfg``."""
    config_path = os.path.join(cfg.run_dir, "config.yaml")
    model_path = os.path.join(cfg.run_dir, "sagim.keras")
    if not (os.path.isfile(config_path) and os.path.isfile(model_path)):
        return None
    # run_training rewrites config.yaml when it starts and sagim.keras when it ends.
    if os.path.getmtime(model_path) < os.path.getmtime(config_path):
        return None
    try:
        saved = to_dict(config_from_dict(read_config_file(config_path)))
    except (ConfigError, InputError):
        return None
    return model_path if saved == to_dict(cfg) else None


def train_variants(configs: Mapping) -> dict:
    """Train (or reuse) each variant: ``{variant: path of its sagim.keras}``."""
    models = {}
    for name, cfg in configs.items():
        done = finished_model(cfg)
        if done:
            log.info("%s: reusing the finished run in %s", name, cfg.run_dir)
            models[name] = done
            continue
        log.info("%s: training in %s (losses: %s)", name, cfg.run_dir, _weights(cfg))
        summary = run_training(cfg)
        summary.pop("model_object", None)
        path = summary.get("outputs", {}).get("model")
        if not path:
            raise InputError(f"{name}: training wrote no model (not the chief worker?)")
        models[name] = path
    return models


def _weights(cfg) -> str:
    return ", ".join(f"{k} {w:g}" for k, w in cfg.losses.weights().items())


def ablation_judge_specs(training_spec: str | None, data_spec: str | None) -> list[str]:
    """The training estimator, the data's (if another), then the independent judges."""
    specs = [s for s in (training_spec, data_spec) if s]
    out, seen = [], set()
    for s in specs + list(INDEPENDENT_JUDGES):
        key = spec_key(s)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def evaluate_variants(
    models: Mapping,
    data_dir,
    split: str = "test",
    guidance: str = "continuous",
    judges: Sequence[str] | str | None = None,
    training_spec: str | None = None,
    limit: int | None = None,
    size=None,
    out_dir=None,
    progress: bool = True,
    n_examples: int = 4,
    notes: str | None = None,
):
    """Evaluate ``{variant: model path or object}`` as methods of one run; write the report.

    Default judges: ``training_spec``, the data's estimator if it differs, then
    ``spectral-residual`` and ``fine-grained`` (a default judge that cannot be built is
    skipped with a logged warning). ``size`` is (width, height), as the evaluation takes
    it. Returns ``(result, paths)``; ``paths["ablation"]`` is ``ablation.md``.
    """
    if guidance not in evalrun.GUIDANCE:
        raise ConfigError(
            f"guidance must be one of {', '.join(evalrun.GUIDANCE)}, got {guidance!r}"
        )
    if not models:
        raise ConfigError("no ablation variants to evaluate")
    size = evalrun.parse_size(size)
    manifest = evalrun.open_data(data_dir, split)
    if judges is None:
        specs = ablation_judge_specs(training_spec, manifest.get("estimator"))
        judge_fns, judge_specs = build_judges(specs, required=False)
    else:
        judge_fns, judge_specs = build_judges(evalrun.parse_list(judges, "judges"))
    methods = {}
    for name, model in models.items():
        generator, _ = evalrun.load_model_under_test(model)
        methods[str(name)] = generator_method(generator, guidance)
    records = evalrun.load_eval_records(data_dir, split=split, size=size, limit=limit)
    result = evaluate_methods(
        records, methods, judge_fns, n_examples=n_examples, progress=progress, desc="ablation"
    )
    result.settings.update(
        evalrun.run_settings(
            split, guidance, limit, size, manifest, judge_specs, variants=list(methods)
        )
    )
    paths = {}
    if out_dir is not None:
        extra = {
            "models": {
                k: (os.fspath(v) if isinstance(v, (str, os.PathLike)) else None)
                for k, v in models.items()
            },
            "data": os.fspath(data_dir),
            "data_estimator": manifest.get("estimator"),
            "training_estimator": training_spec,
        }
        text_notes = _notes(result, data_dir, notes)
        paths = write_report(
            result,
            out_dir,
            title="SaGIM ablation",
            ablation_variants=list(methods),
            extra=extra,
            notes=text_notes,
        )
        paths["ablation"] = write_ablation_md(
            os.path.join(os.fspath(out_dir), "ablation.md"), result, notes=text_notes
        )
    return result, paths


def _notes(result, data_dir, notes: str | None) -> str:
    s = result.settings
    w, h = s["size"]
    lines = [
        f"Data: `{os.fspath(data_dir)}`, split `{s['split']}` ({w}x{h}); guidance given to G: "
        f"{s['guidance']}.",
        "Judges: " + ", ".join(f"`{k}` = `{v}`" for k, v in s["judge_specs"].items()) + ".",
        "Variants (paper's names): "
        + ", ".join(
            f"`{v}` ({ABLATION_PAPER_COLUMNS.get(v, v)})" for v in s.get("variants", result.methods)
        )
        + ".",
    ]
    if notes:
        lines.append(notes.strip())
    return "\n".join(lines)


def format_ablation_md(result, notes: str | None = None) -> str:
    """ablation.md: the Table 2 analogue, then MSE/PSNR per variant, then the paper's Table 2."""
    n = result.settings.get("n_records", "?")
    distortion = _md_table(
        ["Metric"] + list(result.methods),
        [
            ["MSE"] + [_fmt(result.aggregates[m].get("mse"), 4) for m in result.methods],
            ["PSNR (dB)"] + [_fmt(result.aggregates[m].get("psnr"), 2) for m in result.methods],
        ],
    )
    cols = list(next(iter(PAPER_TABLE2.values())))
    paper = _md_table(
        ["Guidance Consistency (%)"] + cols,
        [[r] + [_fmt(v[c]) for c in cols] for r, v in PAPER_TABLE2.items()],
    )
    parts = [
        "# SaGIM ablation (Table 2 layout)\n",
        f"{n} image(s). C1: % of images where O_low is more salient than O_high after the edit; "
        "C2: % where O_low's saliency rose and O_high's fell (same judge).\n",
    ]
    if notes:
        parts.append(notes.strip() + "\n")
    parts.append(
        "## Guidance Consistency (%)\n\n"
        + format_ablation_table(result.aggregates, result.judges, result.methods)
        + "\n"
    )
    parts.append("## Distortion\n\n" + distortion + "\n")
    parts.append(
        "## For reference: the paper's Table 2 (SAM test set, SalGAN judge)\n\n" + paper + "\n"
    )
    return "\n".join(parts)


def write_ablation_md(path, result, notes: str | None = None) -> str:
    """Write :func:`format_ablation_md`'s text to ``path`` atomically; returns the path."""
    return write_text(path, format_ablation_md(result, notes))


def run_ablation(
    config=None,
    overrides: Sequence[str] = (),
    experiment: str | None = None,
    variants: Sequence[str] | str | None = None,
    limit: int | None = None,
    out_dir=None,
    split: str = "test",
    guidance: str | None = None,
    judges: Sequence[str] | str | None = None,
    progress: bool = True,
) -> dict:
    """Train (or reuse) the variants of one config, evaluate them, write the tables.

    Args:
        config: an ExperimentConfig, the path of a YAML/JSON config file, or None.
        overrides: ``key=value`` overrides, applied after the experiment and the file.
        experiment: a registered experiment (e.g. ``paper``) whose defaults the file and
            the overrides change; None starts from the field defaults. Only with a path
            or None as ``config``.
        variants: which of ``full, no-cycle, no-adv, no-color`` (default all, in that order).
        limit: evaluate the first ``limit`` records of the split.
        out_dir: default ``<run_dir>/ablation``.
        guidance: the guidance G gets at evaluation (default: the config's
            ``data.guidance``, the one it was trained with).
        judges: estimator specs (default: the config's estimator, the data's if another,
            spectral-residual, fine-grained).

    Returns:
        ``{"models": {variant: path}, "result": EvaluationResult, "paths": {...},
        "table": the Table 2 markdown}``.
    """
    if config is None or isinstance(config, (str, os.PathLike)):
        path = os.fspath(config) if config is not None else None
        cfg = load_experiment(experiment, path, overrides)
    else:
        if overrides or experiment:
            raise ConfigError("an experiment and overrides apply only to a config file path")
        cfg = config
    configs = variant_configs(cfg, variants)
    if limit is not None and int(limit) < 1:
        raise ConfigError(f"limit must be a positive integer, got {limit}")
    evalrun.open_data(cfg.data.dir, split)  # fail before hours of training
    models = train_variants(configs)
    out_dir = os.fspath(out_dir) if out_dir is not None else os.path.join(cfg.run_dir, "ablation")
    weights = "; ".join(f"`{n}`: {_weights(c)}" for n, c in configs.items())
    height, width = cfg.data.image_size  # the evaluation takes (width, height)
    result, paths = evaluate_variants(
        models,
        cfg.data.dir,
        split=split,
        guidance=guidance or cfg.data.guidance,
        judges=judges,
        training_spec=cfg.estimator,
        limit=limit,
        size=(width, height),
        out_dir=out_dir,
        progress=progress,
        notes=f"Loss weights: {weights}.",
    )
    return {
        "models": models,
        "result": result,
        "paths": paths,
        "table": format_ablation_table(result.aggregates, result.judges, result.methods),
    }
