"""Judges: the saliency estimators an evaluation scores edits with.

A judge is named by an estimator spec (``itti-koch``, ``salgan:PATH``, ``keras:PATH``; see
:func:`sagim_tf.estimators.build_estimator`). The default judges are the estimator the data
were built with (``manifest.json``'s ``estimator``, the "training estimator") plus the
independent :data:`INDEPENDENT_JUDGES`, without duplicates. A default judge that cannot be
built here (a ``salgan:PATH`` whose file is elsewhere) is skipped with a warning; a judge
asked for by name must build.

Example:
    >>> from sagim_tf.evaluation.judges import build_judges, default_judge_specs
    >>> judges, specs = build_judges(default_judge_specs("itti-koch"))  # doctest: +SKIP
    >>> sorted(judges)  # doctest: +SKIP
    ['fine-grained', 'itti-koch', 'spectral-residual']
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

from sagim_tf.estimators import build_estimator
from sagim_tf.estimators.registry import parse_spec
from sagim_tf.utils.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

#: Judges that do not depend on the data's estimator, added to every default evaluation.
INDEPENDENT_JUDGES = ("spectral-residual", "fine-grained")


def spec_key(spec: str) -> tuple[str, str | None]:
    """``"salgan:PATH"`` -> ``("salgan", "PATH")``; the key that makes two specs the same."""
    return parse_spec(spec)


def judge_label(spec: str, specs: Sequence[str] = ()) -> str:
    """A short column name for a judge.

    Args:
        spec: the judge's estimator spec.
        specs: all the specs of the evaluation. Defaults to ``()``.

    Returns:
        The spec's name (``salgan``), or ``name:file`` when two judges in ``specs`` share
        the name.
    """
    name, arg = spec_key(spec)
    if arg is None:
        return name
    if sum(1 for s in specs if spec_key(s)[0] == name) > 1:
        return f"{name}:{os.path.basename(arg.rstrip('/')) or arg}"
    return name


def default_judge_specs(training_spec: str | None) -> list[str]:
    """The training estimator's spec, then :data:`INDEPENDENT_JUDGES`, without duplicates."""
    specs = ([training_spec] if training_spec else []) + list(INDEPENDENT_JUDGES)
    out, seen = [], set()
    for s in specs:
        key = spec_key(s)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def same_spec(a: str, b: str) -> bool:
    """Whether two specs name the same estimator (the same file, for file arguments)."""
    (na, aa), (nb, ab) = spec_key(a), spec_key(b)
    if na != nb:
        return False
    if aa is None or ab is None:
        return aa == ab
    if os.path.exists(aa) and os.path.exists(ab):
        return os.path.samefile(aa, ab)
    return aa == ab


def _layer_config(layer) -> dict | None:
    """A layer's class and Keras config without its name (None: it has no config)."""
    cls = type(layer)
    try:
        config = dict(layer.get_config())
    except (AttributeError, NotImplementedError):
        return None
    # Names are not architecture: two builds of one spec get different automatic names
    # ("re_lu" then "re_lu_1"), and a functional model lists its layers again below.
    for key in ("name", "layers", "input_layers", "output_layers"):
        config.pop(key, None)
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "config": config}


def estimator_config(estimator) -> dict | None:
    """What defines a built estimator's architecture: its class and Keras config, and the
    same for each of its layers in order, all without names (weights are not compared).

    Returns None for an estimator without a Keras ``get_config`` (it cannot be compared).
    """
    own = _layer_config(estimator)
    if own is None:
        return None
    own["layers"] = [_layer_config(layer) for layer in getattr(estimator, "layers", [])]
    return own


def same_estimator(estimator, reference) -> bool | None:
    """Whether two built estimators have the same architecture (see :func:`estimator_config`);
    None when either cannot be compared."""
    a, b = estimator_config(estimator), estimator_config(reference)
    if a is None or b is None:
        return None
    return a == b


def build_judges(
    specs: Sequence[str],
    required: bool = True,
    warn: Callable[[str], None] = logger.warning,
) -> tuple[dict, dict]:
    """Build each judge spec.

    Args:
        specs: estimator specs, each listed once.
        required: raise when a spec cannot be built; with False it is skipped and ``warn``
            is called. Defaults to ``True``.
        warn: called with each warning message. Defaults to this module's logger.

    Returns:
        ``({label: judge}, {label: spec})``, labels from :func:`judge_label`.

    Raises:
        ConfigError: a spec listed twice, no judge built, or a required judge whose spec
            is wrong (InputError when its file is).
    """
    specs = list(specs)
    keys = [spec_key(s) for s in specs]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"judges: a spec is listed twice in {specs}")
    judges, labels = {}, {}
    for spec in specs:
        label = judge_label(spec, specs)
        try:
            judge = build_estimator(spec)
        except (ConfigError, InputError, OSError) as exc:
            if required:
                raise type(exc)(f"judge {spec!r} cannot be built: {exc}") from exc
            warn(f"skipping judge {spec!r}: it cannot be built here ({exc})")
            continue
        if hasattr(judge, "trainable"):
            judge.trainable = False
        judges[label] = judge
        labels[label] = spec
    if not judges:
        raise ConfigError(f"no judge could be built from {specs}; pass --judges SPEC,...")
    return judges, labels
