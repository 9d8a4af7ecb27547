"""Evaluate a trained model on a SAM split: the API behind ``sagim evaluate``.

:func:`evaluate_model` loads G (from a SaGIM or a bare generator ``.keras`` file), reads the
split's records, edits them with SaGIM and the classical baselines, scores every edit under
the judges (:mod:`sagim_tf.evaluation.judges`), and writes ``results.json``, ``results.md``
(Table 1 layout) and one PNG grid per method (see
:func:`sagim_tf.evaluation.report.write_report`).

Checks that produce warnings (returned, written into the report, and passed to ``warn``):

* the model's estimator E differs from the data's (their Keras configs differ, or the run's
  ``config.yaml`` names another spec): judging with another estimator is fine, but the
  training-estimator column then is not the estimator G was trained against;
* the model was trained at another image size (from ``config.yaml`` beside the model file,
  as ``run_training`` writes it): G is fully convolutional and runs at any size, but its
  edits at another scale are not what it learned.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence

import yaml

from sagim_tf.baselines import BASELINES as BASELINE_FUNCTIONS
from sagim_tf.data import read_manifest
from sagim_tf.estimators import build_estimator
from sagim_tf.evaluation.evaluator import baseline_methods, evaluate_methods, identity_method
from sagim_tf.evaluation.judges import (
    build_judges,
    default_judge_specs,
    judge_label,
    same_estimator,
    same_spec,
)
from sagim_tf.evaluation.records import generator_method, load_records
from sagim_tf.evaluation.report import write_report
from sagim_tf.models.generate import has_operator_head
from sagim_tf.models.generator import SaGIMGenerator
from sagim_tf.models.loading import load_model
from sagim_tf.models.refine import check_refine_steps
from sagim_tf.models.sagim import SaGIM
from sagim_tf.utils.checks import parse_size as _parse_size
from sagim_tf.utils.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

BASELINES = tuple(BASELINE_FUNCTIONS)
DEFAULT_METHODS = ("sagim", *BASELINES)
KNOWN_METHODS = (*DEFAULT_METHODS, "identity")
GUIDANCE = ("binary", "continuous")

__all__ = [
    "check_methods",
    "compatibility_warnings",
    "evaluate_model",
    "load_eval_records",
    "load_model_under_test",
    "make_methods",
    "open_data",
    "parse_list",
    "parse_size",
    "read_run_config",
    "training_size",
]


# ----------------------------------------------------------------------------- parsing


def parse_list(value, what: str) -> list[str]:
    """``"a,b"`` or ``["a", "b"]`` -> ``["a", "b"]`` (stripped, empty items refused)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    out = [str(v).strip() for v in items]
    if not out or any(not v for v in out):
        raise ConfigError(
            f"{what}: expected a comma-separated list without empty items, got {value!r}"
        )
    return out


def parse_size(value) -> tuple[int, int] | None:
    """The evaluation size, ``"256x192"`` or ``(256, 192)``; sides of at least 8 pixels."""
    return _parse_size(value, "size", minimum=8)


def check_methods(names: Sequence[str]) -> list[str]:
    """Lower-cased method names; unknown or repeated names are a ConfigError."""
    out = []
    for name in names:
        key = str(name).strip().lower()
        if key not in KNOWN_METHODS:
            raise ConfigError(f"unknown method {name!r}; known methods: {', '.join(KNOWN_METHODS)}")
        if key in out:
            raise ConfigError(f"method {key!r} is listed twice")
        out.append(key)
    if not out:
        raise ConfigError(f"no methods given; known methods: {', '.join(KNOWN_METHODS)}")
    return out


# ----------------------------------------------------------------------------- models


def read_run_config(model_path) -> dict | None:
    """The ``config.yaml`` that ``run_training`` writes beside its model files, as a dict
    (None when there is none or it cannot be read)."""
    if model_path is None:
        return None
    path = os.path.join(os.path.dirname(os.path.abspath(os.fspath(model_path))), "config.yaml")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def load_model_under_test(model) -> tuple[object, dict]:
    """G from a path or a model object, with what is known of its training.

    Args:
        model: path of a ``.keras`` file, or a SaGIM or SaGIMGenerator object.

    Returns:
        ``(generator, info)``; ``info`` has ``kind`` ("sagim" or "generator"), ``path`` (or
        None), ``estimator`` (the SaGIM's E, or None) and ``run_config`` (the run's
        config.yaml as a dict, or None).

    Raises:
        InputError: the file cannot be loaded (see :func:`sagim_tf.models.loading.load_model`)
            or holds anything but a SaGIM or a SaGIMGenerator.
    """
    path = None
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        model = load_model(path, what="model")
    if isinstance(model, SaGIM):
        info = {"kind": "sagim", "estimator": model.estimator}
        generator = model.generator
    elif isinstance(model, SaGIMGenerator):
        info = {"kind": "generator", "estimator": None}
        generator = model
    else:
        where = repr(path) if path else "the model given"
        raise InputError(
            f"model {where} holds a {type(model).__name__} ({getattr(model, 'name', '?')!r}), "
            "not a SaGIM or a SaGIMGenerator; pass the sagim.keras or generator.keras of a run"
        )
    info["path"] = path
    info["run_config"] = read_run_config(path)
    return generator, info


def training_size(run_config: Mapping | None) -> tuple[int, int] | None:
    """(width, height) of the training images from a run's config.yaml, or None.

    ``data.image_size`` is ``{height: H, width: W}`` (the training config's form); a list
    ``[W, H]`` is read as older configs wrote it.
    """
    data = (run_config or {}).get("data")
    value = data.get("image_size") if isinstance(data, Mapping) else None
    try:
        if isinstance(value, Mapping):
            return int(value["width"]), int(value["height"])
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return int(value[0]), int(value[1])
    except (KeyError, TypeError, ValueError):
        pass
    return None


def describe_estimator(estimator) -> str:
    """``"ClassName 'name'"``, for messages."""
    return f"{type(estimator).__name__} {getattr(estimator, 'name', '?')!r}"


def compatibility_warnings(
    info: Mapping, manifest: Mapping, data_dir: str, reference_estimator=None, eval_size=None
) -> list[str]:
    """Messages for a model whose estimator or training size differs from the data's.

    Args:
        info: from :func:`load_model_under_test`.
        manifest: the data's ``manifest.json``.
        reference_estimator: the data's estimator, built (None if it cannot be built here).
        eval_size: (width, height) the records are evaluated at (default: the data's size).
    """
    messages = []
    data_spec = manifest.get("estimator")
    run_cfg = info.get("run_config") or {}
    run_spec = run_cfg.get("estimator") if isinstance(run_cfg.get("estimator"), str) else None
    model_e = info.get("estimator")
    if data_spec:
        same = None
        if model_e is not None and reference_estimator is not None:
            same = same_estimator(model_e, reference_estimator)
        if same is False:
            messages.append(
                f"the model's estimator E ({describe_estimator(model_e)}) differs from the "
                f"data's estimator {data_spec!r} ({describe_estimator(reference_estimator)}) "
                f"that made the guiding maps of {data_dir}; the {judge_label(data_spec)!r} "
                "judge is then not the estimator G was trained against"
            )
        elif same is None and run_spec is not None:
            if not same_spec(run_spec, data_spec):
                messages.append(
                    f"the model was trained with estimator {run_spec!r} (its run's config.yaml), "
                    f"but the data {data_dir} were built with {data_spec!r}; the "
                    f"{judge_label(data_spec)!r} judge is then not the estimator G was trained "
                    "against"
                )
        elif same is None and model_e is not None:
            messages.append(
                f"the model's estimator E ({describe_estimator(model_e)}) cannot be compared "
                f"with the data's estimator {data_spec!r} (which cannot be built here, or has "
                "no Keras config); the training-estimator column may not be the estimator G "
                "was trained against"
            )
        elif same is None:
            messages.append(
                f"the model is a bare generator without a run config.yaml beside it, so its "
                f"training estimator is unknown; the data's is {data_spec!r}"
            )
    data_size = tuple(int(v) for v in manifest.get("size", ()) or ())
    run_size = training_size(run_cfg)
    size = tuple(eval_size) if eval_size else data_size
    if run_size is not None and size and run_size != size:
        rw, rh = run_size
        messages.append(
            f"the model was trained at {rw}x{rh} (data.image_size in its run's config.yaml) but is "
            f"evaluated at {size[0]}x{size[1]} (the size of {data_dir}); G is fully convolutional "
            f"and runs, but at another scale its edits are not what it learned; pass --size "
            f"{rw}x{rh} to evaluate at the training size"
        )
    return messages


def make_methods(
    names: Sequence[str], generator=None, guidance: str = "binary", refine_steps=0, estimator=None
) -> dict:
    """Evaluation methods by name: ``sagim`` (G under ``guidance``, its operator fields
    refined by ``refine_steps`` against ``estimator`` when > 0), the baselines (binary
    guidance, as in the paper's Table 1) and ``identity``."""
    if guidance not in GUIDANCE:
        raise ConfigError(f"guidance must be one of {', '.join(GUIDANCE)}, got {guidance!r}")
    names = check_methods(names)
    baselines = baseline_methods([n for n in names if n in BASELINES])
    methods = {}
    for name in names:
        if name == "sagim":
            if generator is None:
                raise ConfigError("method 'sagim' needs a model")
            methods[name] = generator_method(
                generator, guidance, refine_steps=refine_steps, estimator=estimator
            )
        elif name == "identity":
            methods[name] = identity_method
        else:
            methods[name] = baselines[name]
    return methods


# ----------------------------------------------------------------------------- data


def open_data(data_dir, split: str) -> dict:
    """The manifest of a SAM folder, after checking that it and the split exist."""

    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise InputError(
            f"data {data_dir!r} does not exist; build it with `sagim build-sam` "
            "(see docs/dataset.md)"
        )
    manifest = read_manifest(data_dir)
    counts = manifest.get("counts", {})
    if split not in ("train", "test"):
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
    if int(counts.get(split, 0)) < 1:
        raise InputError(f"data {data_dir!r}: the {split} split has no records")
    return manifest


def load_eval_records(data_dir, split="test", size=None, limit=None) -> list:
    """The first ``limit`` records of a split as dicts (see
    :func:`sagim_tf.evaluation.records.load_records`); none at all is an InputError."""

    if limit is not None and int(limit) < 1:
        raise ConfigError(f"limit must be a positive integer, got {limit}")
    records = load_records(data_dir, split=split, size=size, limit=limit)
    if not records:
        raise InputError(f"data {os.fspath(data_dir)!r}: no records in the {split} split")
    return records


# ----------------------------------------------------------------------------- the run


def run_settings(split, guidance, limit, size, manifest, judge_specs, **extra) -> dict:
    """What an evaluation run used, for ``results.json``: split, guidance, limit, the size
    the records were read at (the data's own when ``size`` is None), judges, and ``extra``."""
    eval_size = size or tuple(int(v) for v in manifest.get("size", ()))
    return {
        "split": split,
        "guidance": guidance,
        "limit": limit,
        "size": list(eval_size),
        "judge_specs": judge_specs,
        **extra,
    }


def evaluate_model(
    model,
    data_dir,
    split: str = "test",
    guidance: str = "binary",
    methods: Sequence[str] | str = DEFAULT_METHODS,
    judges: Sequence[str] | str | None = None,
    limit: int | None = None,
    out_dir=None,
    progress: bool = True,
    size=None,
    n_examples: int = 4,
    warn: Callable[[str], None] = logger.warning,
    title: str = "SaGIM evaluation",
    refine_steps: int = 0,
):
    """Evaluate a model and the baselines on a SAM split; write the report to ``out_dir``.

    Args:
        model: path of a ``.keras`` file holding a SaGIM or a bare SaGIMGenerator, or such
            a model object (None: only the baselines and ``identity`` can run).
        data_dir: a ``sagim build-sam`` output folder.
        split: ``"test"`` (default) or ``"train"``.
        guidance: the guiding map G receives: ``"binary"`` (O_low's mask, as in the
            paper's Table 1; default) or ``"continuous"``. The baselines always take the
            binary map.
        methods: names from ``sagim, wsr, hag, oha, operator-rule, identity`` (a list or "a,b").
        judges: estimator specs (a list or "a,b"); default: the data's estimator,
            ``spectral-residual`` and ``fine-grained``.
        limit: evaluate only the first ``limit`` records of the split (stored order).
        out_dir: where to write results.json, results.md and examples/*.png; None writes
            nothing.
        progress: show a progress bar.
        size: (width, height) to evaluate at (default: the data's stored size).
        n_examples: records drawn in each method's PNG grid.
        warn: called with each warning message. Defaults to this module's logger.
        title: the report's title. Defaults to ``"SaGIM evaluation"``.
        refine_steps: int. With an operator-head G, refine its fields for each image by
            this many steps (:class:`~sagim_tf.models.refine.FieldRefiner`) against the
            model's E, or for a bare G the data's estimator. Defaults to 0 (G alone).

    Returns:
        ``(result, paths)``: an :class:`~sagim_tf.evaluation.evaluator.EvaluationResult`
        (``result.settings["warnings"]`` lists the warnings) and the written paths
        (``{}`` without ``out_dir``).
    """
    if guidance not in GUIDANCE:
        raise ConfigError(f"guidance must be one of {', '.join(GUIDANCE)}, got {guidance!r}")
    method_names = check_methods(parse_list(methods, "methods"))
    size = parse_size(size)
    data_dir = os.fspath(data_dir)
    manifest = open_data(data_dir, split)
    if model is None:
        if "sagim" in method_names:
            raise ConfigError("method 'sagim' needs a model")
        generator, info = None, {}
    else:
        generator, info = load_model_under_test(model)

    warnings: list[str] = []

    def note(message):
        warnings.append(message)
        warn(message)

    data_spec = manifest.get("estimator")
    if judges is None:
        specs = default_judge_specs(data_spec)
        judge_fns, judge_specs = build_judges(specs, required=False, warn=note)
    else:
        specs = parse_list(judges, "judges")
        judge_fns, judge_specs = build_judges(specs, required=True, warn=note)
    if info:
        reference = None
        if data_spec and info.get("estimator") is not None:
            reference = _data_estimator(data_spec, judge_fns, judge_specs)
        for message in compatibility_warnings(info, manifest, data_dir, reference, size):
            note(message)

    refine_steps = check_refine_steps(refine_steps)
    refine_estimator = None
    if refine_steps and "sagim" in method_names:
        if not has_operator_head(generator):
            raise ConfigError(
                "refine_steps needs a model with the operator head; this G has a residual head"
            )
        refine_estimator = info.get("estimator")
        if refine_estimator is None and data_spec:
            refine_estimator = _data_estimator(data_spec, judge_fns, judge_specs)
        if refine_estimator is None:
            raise ConfigError(
                "refine_steps with a bare G refines against the data's estimator, and "
                f"{data_dir}'s cannot be built here; pass the run's sagim.keras instead"
            )
    records = load_eval_records(data_dir, split=split, size=size, limit=limit)
    method_fns = make_methods(method_names, generator, guidance, refine_steps, refine_estimator)
    result = evaluate_methods(
        records, method_fns, judge_fns, n_examples=n_examples, progress=progress, desc="evaluate"
    )
    result.settings.update(
        run_settings(split, guidance, limit, size, manifest, judge_specs, warnings=warnings)
    )
    result.settings["refine_steps"] = refine_steps
    paths = {}
    if out_dir is not None:
        extra = {
            "model": info.get("path") if info else None,
            "model_kind": info.get("kind") if info else None,
            "data": data_dir,
            "data_estimator": data_spec,
            "data_size": manifest.get("size"),
        }
        notes = _notes(result.settings, data_dir, manifest, extra)
        paths = write_report(result, out_dir, title=title, extra=extra, notes=notes)
    return result, paths


def _data_estimator(data_spec: str, judge_fns: Mapping, judge_specs: Mapping):
    """The data's estimator: the judge built from its spec, else built here (None if it
    cannot be, e.g. a ``salgan:PATH`` whose file is elsewhere)."""
    for label, spec in judge_specs.items():
        if same_spec(spec, data_spec):
            return judge_fns[label]
    try:
        return build_estimator(data_spec)
    except (ConfigError, InputError, OSError):
        return None


def _notes(settings: Mapping, data_dir, manifest, extra: Mapping) -> str:
    w, h = settings["size"]
    lines = [
        f"Data: `{data_dir}`, split `{settings['split']}` ({w}x{h}; built with estimator "
        f"`{manifest.get('estimator')}`). SaGIM guidance: {settings['guidance']}; the baselines "
        "use the binary map (O_low's mask).",
    ]
    if settings.get("refine_steps"):
        lines.append(
            f"SaGIM's operator fields refined by {settings['refine_steps']} steps per image "
            "against E (`--refine-steps`)."
        )
    if extra.get("model"):
        lines.append(f"Model: `{extra['model']}` ({extra.get('model_kind')}).")
    lines.append(
        "Judges: " + ", ".join(f"`{k}` = `{v}`" for k, v in settings["judge_specs"].items()) + "."
    )
    for message in settings.get("warnings", []):
        lines.append(f"\n**Warning:** {message}.")
    return "\n".join(lines)
