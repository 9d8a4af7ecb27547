"""Loss ablations (paper §4.4, Table 2): train variants of one config, evaluate, tabulate.

From one :class:`~sagim_tf.training.config.ExperimentConfig` the variants are

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
written with ``results.json``, ``results.md`` and the example grids.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from sagim_tf.utils.errors import ConfigError, InputError
from sagim_tf.evaluation import run as evalrun

# variant -> the loss weight it sets to 0 (None: the full model)
VARIANTS = {"full": None, "no-cycle": "cycle", "no-adv": "adv", "no-color": "color"}
PAPER_COLUMNS = {"full": "Ours", "no-cycle": "w/o Lcycle", "no-adv": "w/o Ladv", "no-color": "w/o Lcolor"}


def _say(message: str) -> None:
    print(f"ablation: {message}", flush=True)


def _stderr_warn(message: str) -> None:
    print(f"ablation: warning: {message}", file=sys.stderr, flush=True)


def check_variants(names: Sequence[str] | str | None) -> list[str]:
    if names is None:
        return list(VARIANTS)
    out = []
    for name in evalrun.parse_list(names, "variants"):
        if name not in VARIANTS:
            raise ConfigError(f"unknown ablation variant {name!r}; known: {', '.join(VARIANTS)}")
        if name in out:
            raise ConfigError(f"ablation variant {name!r} is listed twice")
        out.append(name)
    return out


def variant_configs(cfg, variants: Sequence[str] | None = None) -> dict:
    """``{variant: config}``: ``cfg`` with one loss weight set to 0 and ``run_dir`` set to
    ``<cfg.run_dir>/<variant>``."""
    out = {}
    for name in check_variants(variants):
        loss = VARIANTS[name]
        losses = cfg.losses if loss is None else dataclasses.replace(cfg.losses, **{loss: 0.0})
        out[name] = dataclasses.replace(cfg, losses=losses, run_dir=os.path.join(cfg.run_dir, name))
    return out


def finished_model(cfg) -> str | None:
    """``<run_dir>/sagim.keras`` if the run folder holds a finished run of exactly ``cfg``."""
    from sagim_tf.training.config import config_from_dict, read_config_file, to_dict

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


def train_variants(configs: Mapping, say: Callable[[str], None] = _say) -> dict:
    """Train (or reuse) each variant: ``{variant: path of its sagim.keras}``."""
    from sagim_tf.training.run import run_training

    models = {}
    for name, cfg in configs.items():
        done = finished_model(cfg)
        if done:
            say(f"{name}: reusing the finished run in {cfg.run_dir}")
            models[name] = done
            continue
        say(f"{name}: training in {cfg.run_dir} (losses: {_weights(cfg)})")
        summary = run_training(cfg)
        summary.pop("model_object", None)
        path = summary.get("outputs", {}).get("model")
        if not path:
            raise InputError(f"{name}: training wrote no model (not the chief worker?)")
        models[name] = path
    return models


def _weights(cfg) -> str:
    return ", ".join(f"{k} {getattr(cfg.losses, k):g}" for k in ("rec", "content", "color", "cycle", "adv"))


def ablation_judge_specs(training_spec: str | None, data_spec: str | None) -> list[str]:
    """The training estimator, the data's (if another), then the independent judges."""
    specs = [s for s in (training_spec, data_spec) if s]
    out, seen = [], set()
    for s in specs + list(evalrun.INDEPENDENT_JUDGES):
        key = evalrun._spec_key(s)
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
    warn: Callable[[str], None] = _stderr_warn,
    notes: str | None = None,
):
    """Evaluate ``{variant: model path or object}`` as methods of one run; write the report.

    Default judges: ``training_spec``, the data's estimator if it differs, then
    ``spectral-residual`` and ``fine-grained`` (a default judge that cannot be built is
    skipped with a warning). Returns ``(result, paths)``; ``paths["ablation"]`` is
    ``ablation.md``.
    """
    from sagim_tf.evaluation.evaluator import evaluate_methods
    from sagim_tf.evaluation.report import write_report
    from sagim_tf.evaluation.records import generator_method

    if guidance not in evalrun.GUIDANCE:
        raise ConfigError(f"guidance must be one of {', '.join(evalrun.GUIDANCE)}, got {guidance!r}")
    if not models:
        raise ConfigError("no ablation variants to evaluate")
    size = evalrun.parse_size(size)
    manifest = evalrun.open_data(data_dir, split)
    if judges is None:
        specs = ablation_judge_specs(training_spec, manifest.get("estimator"))
        judge_fns, judge_specs = evalrun.build_judges(specs, required=False, warn=warn)
    else:
        judge_fns, judge_specs = evalrun.build_judges(evalrun.parse_list(judges, "judges"), warn=warn)
    methods = {}
    for name, model in models.items():
        generator, _ = evalrun.load_generator(model)
        methods[str(name)] = generator_method(generator, guidance)
    records = evalrun.load_eval_records(data_dir, split=split, size=size, limit=limit)
    result = evaluate_methods(records, methods, judge_fns, n_examples=n_examples,
                              progress=progress, desc="ablation")
    eval_size = size or tuple(int(v) for v in manifest.get("size", ()))
    result.settings.update({
        "split": split, "guidance": guidance, "limit": limit, "size": list(eval_size),
        "judge_specs": judge_specs, "variants": list(methods),
    })
    paths = {}
    if out_dir is not None:
        extra = {
            "models": {k: (os.fspath(v) if isinstance(v, (str, os.PathLike)) else None) for k, v in models.items()},
            "data": os.fspath(data_dir),
            "data_estimator": manifest.get("estimator"),
            "training_estimator": training_spec,
        }
        text_notes = _notes(result, data_dir, notes)
        paths = write_report(result, out_dir, title="SaGIM ablation", ablation_variants=list(methods),
                             extra=extra, notes=text_notes)
        paths["ablation"] = write_ablation_md(os.path.join(os.fspath(out_dir), "ablation.md"), result,
                                              notes=text_notes)
    return result, paths


def _notes(result, data_dir, notes: str | None) -> str:
    s = result.settings
    w, h = s["size"]
    lines = [
        f"Data: `{os.fspath(data_dir)}`, split `{s['split']}` ({w}x{h}); guidance given to G: "
        f"{s['guidance']}.",
        "Judges: " + ", ".join(f"`{k}` = `{v}`" for k, v in s["judge_specs"].items()) + ".",
        "Variants (paper's names): " + ", ".join(
            f"`{v}` ({PAPER_COLUMNS.get(v, v)})" for v in s.get("variants", result.methods)) + ".",
    ]
    if notes:
        lines.append(notes.strip())
    return "\n".join(lines)


def format_ablation_md(result, notes: str | None = None) -> str:
    """ablation.md: the Table 2 analogue, then MSE/PSNR per variant, then the paper's Table 2."""
    from sagim_tf.evaluation.report import PAPER_TABLE2, _fmt, _md_table, format_ablation_table

    n = result.settings.get("n_records", "?")
    distortion = _md_table(
        ["Metric"] + list(result.methods),
        [
            ["MSE"] + [_fmt(result.aggregates[m].get("mse"), 4) for m in result.methods],
            ["PSNR (dB)"] + [_fmt(result.aggregates[m].get("psnr"), 2) for m in result.methods],
        ],
    )
    cols = list(next(iter(PAPER_TABLE2.values())))
    paper = _md_table(["Guidance Consistency (%)"] + cols,
                      [[r] + [_fmt(v[c]) for c in cols] for r, v in PAPER_TABLE2.items()])
    parts = [
        "# SaGIM ablation (Table 2 layout)\n",
        f"{n} image(s). C1: % of images where O_low is more salient than O_high after the edit; "
        "C2: % where O_low's saliency rose and O_high's fell (same judge).\n",
    ]
    if notes:
        parts.append(notes.strip() + "\n")
    parts.append("## Guidance Consistency (%)\n\n"
                 + format_ablation_table(result.aggregates, result.judges, result.methods) + "\n")
    parts.append("## Distortion\n\n" + distortion + "\n")
    parts.append("## For reference: the paper's Table 2 (SAM test set, SalGAN judge)\n\n" + paper + "\n")
    return "\n".join(parts)


def write_ablation_md(path, result, notes: str | None = None) -> str:
    from sagim_tf.utils.io import atomic_write

    text = format_ablation_md(result, notes)

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, write, suffix=".md")


def run_ablation(
    config,
    overrides: Sequence[str] = (),
    variants: Sequence[str] | str | None = None,
    limit: int | None = None,
    out_dir=None,
    split: str = "test",
    guidance: str | None = None,
    judges: Sequence[str] | str | None = None,
    progress: bool = True,
    say: Callable[[str], None] = _say,
    warn: Callable[[str], None] = _stderr_warn,
) -> dict:
    """Train (or reuse) the variants of one config, evaluate them, write the tables.

    Args:
        config: an ExperimentConfig or the path of a YAML/JSON config file.
        overrides: ``key=value`` overrides applied to a config file.
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
    from sagim_tf.training.config import load_config
    from sagim_tf.evaluation.report import format_ablation_table

    if isinstance(config, (str, os.PathLike)):
        cfg = load_config(os.fspath(config), overrides)
    else:
        if overrides:
            raise ConfigError("overrides apply only to a config file path")
        cfg = config
    configs = variant_configs(cfg, variants)
    if limit is not None and int(limit) < 1:
        raise ConfigError(f"limit must be a positive integer, got {limit}")
    evalrun.open_data(cfg.data.dir, split)  # fail before hours of training
    models = train_variants(configs, say=say)
    out_dir = os.fspath(out_dir) if out_dir is not None else os.path.join(cfg.run_dir, "ablation")
    weights = "; ".join(f"`{n}`: {_weights(c)}" for n, c in configs.items())
    result, paths = evaluate_variants(
        models, cfg.data.dir, split=split, guidance=guidance or cfg.data.guidance, judges=judges,
        training_spec=cfg.estimator, limit=limit, size=tuple(cfg.data.image_size), out_dir=out_dir,
        progress=progress, warn=warn, notes=f"Loss weights: {weights}.",
    )
    return {
        "models": models,
        "result": result,
        "paths": paths,
        "table": format_ablation_table(result.aggregates, result.judges, result.methods),
    }
