"""Run editing methods over records and score them under saliency judges.

Backend-agnostic: a *method* is any callable ``method(image, guidance_binary, guidance) ->
edited`` on one (H, W, 3) image in [0, 1], and a *judge* is any saliency estimator mapping a
batch (B, H, W, 3) in [0, 1] to maps (B, H, W, 1) in [0, 1] (a Keras model built by
``sagim_tf.estimators.build_estimator(spec)``, or a plain NumPy function). Judge outputs are
converted with ``np.asarray``, so TensorFlow, JAX or NumPy results all work.

Example:
    >>> from sagim_tf.estimators import build_estimator
    >>> from sagim_tf.evaluation.evaluator import baseline_methods, evaluate_methods
    >>> from sagim_tf.evaluation.records import load_records
    >>> from sagim_tf.evaluation.report import write_report
    >>> records = load_records("data/sam", split="test", limit=8)  # doctest: +SKIP
    >>> judges = {s: build_estimator(s) for s in ("itti-koch", "spectral-residual")}
    >>> methods = baseline_methods()  # wsr, hag, oha, operator-rule on the binary map
    >>> result = evaluate_methods(records, methods, judges)  # doctest: +SKIP
    >>> write_report(result, "runs/eval")  # results.json, results.md, grids  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from sagim_tf.baselines import get_baseline
from sagim_tf.evaluation import metrics, realism
from sagim_tf.utils.checks import check_image, check_map
from sagim_tf.utils.errors import ConfigError, InputError

Method = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
Judge = Callable[[np.ndarray], object]


@dataclass
class EvaluationResult:
    """What :func:`evaluate_methods` returns.

    Attributes:
        rows: one dict per (record, method): ``id``, ``method``, ``mse``, ``psnr``, ``ssim``,
            ``changed_outside``, the photorealism measures ``non_affine`` (share of the edit's
            energy no local affine colour map explains), ``non_affine_rms`` (8-bit levels) and
            ``colour_cast_outside`` (mean CIELAB ΔE outside O_low | O_high), and ``judges: {judge: {c1, c2, low_before, low_after,
            high_before, high_after, cc, kl}}``.
        aggregates: ``metrics.aggregate(rows, by="method")``: per method, means of the
            numbers and percentages (0-100) of ``c1``/``c2``, plus ``n``.
        methods: method names in evaluation order.
        judges: judge names in evaluation order.
        examples: up to ``n_examples`` dicts with ``id``, ``image``, ``guidance``,
            ``guidance_binary``, ``edited: {method: image}`` and ``maps: {judge:
            {"original": map, method: map}}`` (maps are (H, W) float32), for the grids.
        settings: the evaluation's parameters (for results.json).
    """

    rows: list = field(default_factory=list)
    aggregates: dict = field(default_factory=dict)
    methods: list = field(default_factory=list)
    judges: list = field(default_factory=list)
    examples: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)


def _record(rec: Mapping, index: int) -> dict:
    if not isinstance(rec, Mapping):
        raise InputError(f"record {index}: expected a dict, got {type(rec).__name__}")
    rid = str(rec.get("id", index))
    for key in ("image", "guidance", "mask_low", "mask_high"):
        if key not in rec or rec[key] is None:
            raise InputError(f"record {rid}: missing {key!r}")
    image = check_image(rec["image"], f"record {rid}: image")
    if image.ndim != 3:
        raise InputError(f"record {rid}: image must be one (H, W, 3) image, got {image.shape}")
    hw = image.shape[:2]
    maps = {}
    for key in ("guidance", "mask_low", "mask_high", "guidance_binary"):
        if rec.get(key) is None:
            continue
        name = f"record {rid}: {key}"
        maps[key] = metrics.as_plane(check_map(rec[key], name), name, shape=hw, dtype=np.float32)
    guidance = maps["guidance"]
    mask_low, mask_high = maps["mask_low"] > 0.5, maps["mask_high"] > 0.5
    binary = maps.get("guidance_binary", mask_low.astype(np.float32))
    for name, m in (("mask_low", mask_low), ("mask_high", mask_high)):
        if not m.any():
            raise InputError(f"record {rid}: {name} is empty")
    return {
        "id": rid,
        "image": image,
        "guidance": guidance,
        "guidance_binary": binary,
        "mask_low": mask_low,
        "mask_high": mask_high,
    }


def run_judge(judge: Judge, images: np.ndarray, name: str = "judge") -> np.ndarray:
    """Call a judge on a (B, H, W, 3) batch and return (B, H, W) float32 maps in [0, 1].

    Outputs shaped (B, H, W, 1) or (B, H, W) are accepted; values are clipped to [0, 1]
    (estimators may overshoot by rounding); NaN or a wrong size is an InputError.
    """
    images = np.ascontiguousarray(images, dtype=np.float32)
    out = judge(images)
    if hasattr(out, "numpy") and not isinstance(out, np.ndarray):
        out = out.numpy()
    maps = np.asarray(out, dtype=np.float32)
    b, h, w = images.shape[:3]
    if maps.ndim == 4 and maps.shape[-1] == 1:
        maps = maps[..., 0]
    if maps.shape != (b, h, w):
        raise InputError(
            f"judge {name!r}: returned shape {tuple(np.shape(out))}, expected ({b}, {h}, {w}, 1)"
        )
    if not np.isfinite(maps).all():
        raise InputError(f"judge {name!r}: returned NaN or infinite values")
    return np.clip(maps, 0.0, 1.0)


def _edit(method: Method, name: str, rec: dict) -> np.ndarray:
    out = method(
        rec["image"].copy(),
        rec["guidance_binary"][..., None].copy(),
        rec["guidance"][..., None].copy(),
    )
    if hasattr(out, "numpy") and not isinstance(out, np.ndarray):
        out = out.numpy()
    out = np.asarray(out)
    if out.ndim == 4 and out.shape[0] == 1:
        out = out[0]
    out = check_image(out, f"method {name!r} output for record {rec['id']}")
    if out.shape != rec["image"].shape:
        raise InputError(
            f"method {name!r}: returned shape {out.shape} for record {rec['id']}, "
            f"expected the input's {rec['image'].shape}"
        )
    return out


def evaluate_methods(
    records: Iterable[Mapping],
    methods: Mapping[str, Method],
    judges: Mapping[str, Judge],
    *,
    change_threshold: float = 0.05,
    n_examples: int = 4,
    progress: bool = True,
    desc: str = "evaluate",
) -> EvaluationResult:
    """Edit every record with every method and score the edits under every judge.

    Args:
        records: dicts with ``image`` (H, W, 3) in [0, 1], ``guidance`` (continuous guiding
            map, (H, W[, 1])), ``mask_low``, ``mask_high`` (O_low and O_high), optionally
            ``guidance_binary`` (defaults to ``mask_low``, the paper's binary guidance) and
            ``id`` (defaults to the index).
        methods: name -> ``method(image, guidance_binary, guidance) -> edited``; maps come
            as (H, W, 1). Each method picks the guidance it uses (the baselines take the
            binary map; SaGIM takes the continuous one).
        judges: name -> saliency estimator on batches (B, H, W, 3) -> (B, H, W, 1).
        change_threshold: per-pixel threshold of ``changed_outside`` (region = O_low | O_high).
        n_examples: how many leading records to keep, with their edits and maps, for grids.
        progress: show a tqdm progress bar.
        desc: the progress bar's label.

    Returns:
        An :class:`EvaluationResult`. Deterministic for deterministic methods and judges:
        records, methods and judges are processed in the order given.
    """
    if not methods:
        raise ConfigError("evaluate_methods: no methods given")
    if not judges:
        raise ConfigError("evaluate_methods: no judges given")
    for kind, mapping in (("method", methods), ("judge", judges)):
        for name, fn in mapping.items():
            if not callable(fn):
                raise ConfigError(f"{kind} {name!r} is not callable")
    method_names = [str(m) for m in methods]
    judge_names = [str(j) for j in judges]
    threshold = float(change_threshold)

    try:
        total = len(records)  # type: ignore[arg-type]
    except TypeError:
        total = None

    rows: list = []
    examples: list = []
    iterator = tqdm(records, total=total, desc=desc, unit="img", disable=not progress)
    for index, raw in enumerate(iterator):
        rec = _record(raw, index)
        edits = {name: _edit(fn, name, rec) for name, fn in methods.items()}
        batch = np.stack([rec["image"]] + [edits[m] for m in methods])
        maps = {j: run_judge(fn, batch, j) for j, fn in judges.items()}
        region = rec["mask_low"] | rec["mask_high"]
        reference = realism.Reference(rec["image"])  # the original's part, once per record
        for k, name in enumerate(methods, start=1):
            edited = edits[name]
            row = {
                "id": rec["id"],
                "method": str(name),
                "mse": metrics.mse(rec["image"], edited),
                "psnr": metrics.psnr(rec["image"], edited),
                "ssim": metrics.ssim(rec["image"], edited),
                "changed_outside": metrics.changed_outside(rec["image"], edited, region, threshold),
                "colour_cast_outside": reference.colour_cast_outside(edited, region),
                "judges": {},
            }
            photo = reference.non_affine(edited)
            row["non_affine"], row["non_affine_rms"] = photo["share"], photo["rms"]
            for j in judges:
                s0, s1 = maps[j][0], maps[j][k]
                scores = metrics.guidance_consistency(s0, s1, rec["mask_low"], rec["mask_high"])
                scores["cc"] = metrics.cc(rec["guidance"], s1)
                scores["kl"] = (
                    metrics.kl(rec["guidance"], s1)
                    if s1.sum() > 0 and rec["guidance"].sum() > 0
                    else None
                )
                row["judges"][str(j)] = scores
            rows.append(row)
        if len(examples) < n_examples:
            examples.append(
                {
                    "id": rec["id"],
                    "image": rec["image"],
                    "guidance": rec["guidance"],
                    "guidance_binary": rec["guidance_binary"],
                    "edited": {str(m): edits[m] for m in methods},
                    "maps": {
                        str(j): {
                            "original": maps[j][0],
                            **{str(m): maps[j][k] for k, m in enumerate(methods, 1)},
                        }
                        for j in judges
                    },
                }
            )
    if not rows:
        raise InputError("evaluate_methods: no records to evaluate")
    return EvaluationResult(
        rows=rows,
        aggregates=metrics.aggregate(rows, by="method"),
        methods=method_names,
        judges=judge_names,
        examples=examples,
        settings={"change_threshold": threshold, "n_records": len(rows) // len(methods)},
    )


def identity_method(image, guidance_binary=None, guidance=None) -> np.ndarray:
    """The unedited image: a reference row (C1 is the original order; C2 is always False)."""
    return np.asarray(image, dtype=np.float32)


def baseline_methods(names=("wsr", "hag", "oha", "operator-rule"), **kwargs) -> dict[str, Method]:
    """Methods for the classical baselines, driven by the binary guidance (O_low's mask).

    ``kwargs`` maps a baseline name to its keyword arguments, e.g. ``wsr={"luminance": 0.3}``.
    """
    out: dict[str, Method] = {}
    for name in names:
        fn = get_baseline(name)
        params = dict(kwargs.get(name, {}))

        def method(image, guidance_binary, guidance, _fn=fn, _params=params):
            return _fn(image, guidance_binary, **_params)

        out[str(name).lower()] = method
    unknown = set(kwargs) - {str(n).lower() for n in names}
    if unknown:
        raise ConfigError(
            f"baseline_methods: parameters given for unused baselines {sorted(unknown)}"
        )
    return out
