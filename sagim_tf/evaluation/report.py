"""Write evaluation results: results.json, results.md (paper-shaped tables), PNG grids.

* :func:`format_table1` gives the paper's Table 1 shape: methods as rows, C1 and C2 (%) per
  judge, then MSE and PSNR.
* :func:`format_ablation_table` gives Table 2's shape: model variants as columns, one row per
  judge and criterion ("<judge> w/ C1").
* :func:`write_example_grid` draws, per method, rows of original | guidance | edited and each
  judge's map of the original and of the edit.
* :func:`write_report` writes all of them for an :class:`~sagim_tf.evaluation.evaluator.EvaluationResult`.

All writes are atomic (see :mod:`sagim_tf.utils.io`). Only PIL and OpenCV are used.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sagim_tf.utils.io import atomic_write, to_uint8, write_json, write_text

# Paper, Table 1 (binary guidance) and Table 2, for side-by-side reading of our numbers.
PAPER_TABLE1 = {
    "Ours": {
        "DeepGaze C1": 23.1,
        "SalGAN C1": 70.2,
        "DeepGaze C2": 36.5,
        "SalGAN C2": 86.9,
        "MSE": 0.06,
    },
    "OHA": {
        "DeepGaze C1": 15.7,
        "SalGAN C1": 12.0,
        "DeepGaze C2": 32.9,
        "SalGAN C2": 42.7,
        "MSE": 0.12,
    },
    "HAG": {
        "DeepGaze C1": 18.9,
        "SalGAN C1": 11.3,
        "DeepGaze C2": 34.9,
        "SalGAN C2": 47.8,
        "MSE": 0.04,
    },
    "WSR": {
        "DeepGaze C1": 17.4,
        "SalGAN C1": 10.6,
        "DeepGaze C2": 36.7,
        "SalGAN C2": 40.6,
        "MSE": 0.07,
    },
}
PAPER_TABLE2 = {
    "SalGAN w/ C1": {"Ours": 45.0, "w/o Lcycle": 37.4, "w/o Ladv": 24.3, "w/o Lcolor": 25.3},
    "SalGAN w/ C2": {"Ours": 66.4, "w/o Lcycle": 63.3, "w/o Ladv": 61.7, "w/o Lcolor": 62.6},
}


# ----------------------------------------------------------------------------- JSON


def _jsonable(x):
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return v if math.isfinite(v) else None  # inf PSNR of an unchanged image -> null
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x


def write_results_json(path, result, extra: Mapping | None = None) -> str:
    """Write settings, methods, judges, aggregates and per-image rows as JSON.

    Non-finite numbers (the PSNR of an unchanged image) are written as null.
    ``extra`` (e.g. the config and estimator specs of the run) is stored under ``"run"``.
    """
    payload = {
        "settings": result.settings,
        "methods": result.methods,
        "judges": result.judges,
        "aggregates": result.aggregates,
        "rows": result.rows,
    }
    if extra:
        payload["run"] = dict(extra)
    return write_json(path, _jsonable(payload), indent=2)


# ----------------------------------------------------------------------------- Markdown


def _fmt(v, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{digits}f}"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def format_table1(
    aggregates: Mapping, judges: Sequence[str], methods: Sequence[str] | None = None
) -> str:
    """Table 1 shape: one row per method; ``<judge> C1`` for all judges, then ``<judge> C2``,
    then MSE (x100 is *not* applied; [0, 1] scale, 4 decimals), PSNR (dB) and the
    photorealism measures: the non-affine share of the edit and the ΔE outside the guided
    regions (:mod:`sagim_tf.evaluation.realism`)."""
    methods = list(methods) if methods is not None else list(aggregates)
    header = (
        ["Method"]
        + [f"{j} C1 (%)" for j in judges]
        + [f"{j} C2 (%)" for j in judges]
        + ["MSE", "PSNR (dB)", "non-affine", "ΔE outside", "n"]
    )
    rows = []
    for m in methods:
        agg = aggregates.get(m, {})
        js = agg.get("judges", {})
        rows.append(
            [str(m)]
            + [_fmt(js.get(j, {}).get("c1")) for j in judges]
            + [_fmt(js.get(j, {}).get("c2")) for j in judges]
            + [
                _fmt(agg.get("mse"), 4),
                _fmt(agg.get("psnr"), 2),
                _fmt(agg.get("non_affine"), 4),
                _fmt(agg.get("colour_cast_outside"), 2),
                str(agg.get("n", "-")),
            ]
        )
    return _md_table(header, rows)


def format_details_table(
    aggregates: Mapping, judges: Sequence[str], methods: Sequence[str] | None = None
) -> str:
    """Further per-method means: SSIM, share changed outside O_low|O_high, and per judge the
    fit of E(edited) to the continuous guidance (CC up, KL down) and O_low/O_high saliency."""
    methods = list(methods) if methods is not None else list(aggregates)
    header = ["Method", "SSIM", "changed outside (%)", "non-affine RMS (8-bit)"]
    for j in judges:
        header += [f"{j} CC", f"{j} KL", f"{j} O_low before->after", f"{j} O_high before->after"]
    rows = []
    for m in methods:
        agg = aggregates.get(m, {})
        co = agg.get("changed_outside")
        row = [
            str(m),
            _fmt(agg.get("ssim"), 3),
            _fmt(None if co is None else 100.0 * co, 1),
            _fmt(agg.get("non_affine_rms"), 2),
        ]
        for j in judges:
            s = agg.get("judges", {}).get(j, {})
            row += [
                _fmt(s.get("cc"), 3),
                _fmt(s.get("kl"), 3),
                f"{_fmt(s.get('low_before'), 3)} -> {_fmt(s.get('low_after'), 3)}",
                f"{_fmt(s.get('high_before'), 3)} -> {_fmt(s.get('high_after'), 3)}",
            ]
        rows.append(row)
    return _md_table(header, rows)


def format_ablation_table(
    aggregates: Mapping, judges: Sequence[str], variants: Sequence[str] | None = None
) -> str:
    """Table 2 shape: variants (e.g. "full", "w/o Lcycle") as columns; rows ``<judge> w/ C1``
    and ``<judge> w/ C2`` with percentages. Each variant is a method of one evaluation run."""
    variants = list(variants) if variants is not None else list(aggregates)
    header = ["Guidance Consistency (%)"] + [str(v) for v in variants]
    rows = []
    for crit in ("c1", "c2"):
        for j in judges:
            rows.append(
                [f"{j} w/ {crit.upper()}"]
                + [
                    _fmt(aggregates.get(v, {}).get("judges", {}).get(j, {}).get(crit))
                    for v in variants
                ]
            )
    return _md_table(header, rows)


def _paper_tables() -> str:
    t1_cols = ["DeepGaze C1", "SalGAN C1", "DeepGaze C2", "SalGAN C2", "MSE"]
    t1 = _md_table(
        ["Method"] + t1_cols,
        [
            [m] + [_fmt(v[c], 2 if c == "MSE" else 1) for c in t1_cols]
            for m, v in PAPER_TABLE1.items()
        ],
    )
    t2_cols = list(next(iter(PAPER_TABLE2.values())))
    t2 = _md_table(
        ["Guidance Consistency (%)"] + t2_cols,
        [[r] + [_fmt(v[c]) for c in t2_cols] for r, v in PAPER_TABLE2.items()],
    )
    return (
        "### For reference: the paper's numbers (SAM test set, SalGAN/DeepGaze judges)\n\n"
        "Table 1 (binary guidance):\n\n" + t1 + "\n\nTable 2 (ablation):\n\n" + t2 + "\n"
    )


def format_results_md(
    result,
    title: str = "SaGIM evaluation",
    ablation_variants: Sequence[str] | None = None,
    notes: str | None = None,
    include_paper: bool = True,
) -> str:
    """The whole results.md text for an evaluation result."""
    parts = [f"# {title}\n"]
    n = result.settings.get("n_records", "?")
    parts.append(
        f"{n} image(s); methods: {', '.join(result.methods)}; judges: {', '.join(result.judges)}.\n"
        "C1: % of images where mean saliency inside O_low exceeds that inside O_high in the "
        "edited image. C2: % where O_low's mean saliency rose and O_high's fell against the "
        "original (same judge). MSE on the [0, 1] scale; PSNR in dB (unchanged images, whose "
        "PSNR is infinite, are left out of the mean).\n"
    )
    if notes:
        parts.append(notes.strip() + "\n")
    parts.append(
        "## Guidance Consistency and distortion (Table 1 layout)\n\n"
        + format_table1(result.aggregates, result.judges, result.methods)
        + "\n"
    )
    parts.append(
        "## Further metrics\n\n"
        + format_details_table(result.aggregates, result.judges, result.methods)
        + "\n"
    )
    if ablation_variants:
        parts.append(
            "## Ablation (Table 2 layout)\n\n"
            + format_ablation_table(result.aggregates, result.judges, ablation_variants)
            + "\n"
        )
    if include_paper:
        parts.append(_paper_tables())
    return "\n".join(parts)


def write_results_md(path, result, **kwargs) -> str:
    """Write :func:`format_results_md` to ``path`` atomically."""
    return write_text(path, format_results_md(result, **kwargs))


# ----------------------------------------------------------------------------- PNG grids


def _map_rgb(m: np.ndarray) -> np.ndarray:
    u8 = to_uint8(np.asarray(m, dtype=np.float32))
    return cv2.cvtColor(cv2.applyColorMap(u8, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def _tile(x: np.ndarray, size) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 2 or (x.ndim == 3 and x.shape[-1] == 1):
        rgb = _map_rgb(x)
    else:
        rgb = to_uint8(x)
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def slug(name: str) -> str:
    """A file-name-safe version of a method name ("w/o Lcycle" -> "w-o-Lcycle")."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip("-.")
    return s or "method"


def write_example_grid(
    path, examples: Sequence[Mapping], method: str, judges: Sequence[str], tile_width: int = 192
) -> str:
    """One PNG per method: a row per example; columns original, guidance, edited, then for
    each judge its map of the original and of the edited image (inferno colour map)."""
    if not examples:
        raise ValueError("write_example_grid: no examples")
    h0, w0 = np.asarray(examples[0]["image"]).shape[:2]
    tw = int(tile_width)
    th = max(8, int(round(tw * h0 / w0)))
    labels = ["original", "guidance", f"{method}"]
    for j in judges:
        labels += [f"{j}: original", f"{j}: edited"]
    label_h, pad = 16, 2
    cols = len(labels)
    canvas = Image.new(
        "RGB",
        (cols * (tw + pad) + pad, label_h + len(examples) * (th + pad) + pad),
        (255, 255, 255),
    )
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for c, text in enumerate(labels):
        draw.text((pad + c * (tw + pad) + 2, 2), text[: max(4, tw // 6)], fill=(0, 0, 0), font=font)
    for r, ex in enumerate(examples):
        tiles = [ex["image"], ex["guidance"], ex["edited"][method]]
        for j in judges:
            tiles += [ex["maps"][j]["original"], ex["maps"][j][method]]
        y = label_h + r * (th + pad) + pad
        for c, t in enumerate(tiles):
            canvas.paste(Image.fromarray(_tile(t, (tw, th))), (pad + c * (tw + pad), y))
    return atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"), suffix=".png")


def write_report(
    result,
    out_dir,
    title: str = "SaGIM evaluation",
    ablation_variants: Sequence[str] | None = None,
    extra: Mapping | None = None,
    notes: str | None = None,
    grids: bool = True,
) -> dict:
    """Write ``results.json``, ``results.md`` and ``examples/<method>.png`` under ``out_dir``.

    Returns ``{"json": path, "markdown": path, "grids": {method: path}}``.
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        "json": write_results_json(os.path.join(out_dir, "results.json"), result, extra=extra),
        "markdown": write_results_md(
            os.path.join(out_dir, "results.md"),
            result,
            title=title,
            ablation_variants=ablation_variants,
            notes=notes,
        ),
        "grids": {},
    }
    if grids and result.examples:
        for m in result.methods:
            paths["grids"][m] = write_example_grid(
                os.path.join(out_dir, "examples", f"{slug(m)}.png"),
                result.examples,
                m,
                result.judges,
            )
    return paths
