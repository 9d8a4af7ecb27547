"""What ``sagim export`` exports from a ``.keras`` file: G, and E for ``edit_masks``.

A full SaGIM file holds its G and the estimator E it was trained against; a bare G file
holds G alone. The ``edit_masks`` signature runs E inside the SavedModel's graph, so it is
exported only with an E that can be traced (a Keras model: Itti-Koch, SalGAN,
``keras:PATH``, a SaGIM's own E):

=========================  =================================================================
``--estimator``            E for ``edit_masks``
=========================  =================================================================
(not given)                a SaGIM file's own E; a bare G file: none, ``edit_masks`` is
                           skipped with a note naming ``--estimator``
``none``                   none: ``edit_masks`` is skipped
a spec (``itti-koch``,     that estimator (``sagim edit`` uses ``itti-koch`` for a bare G);
``salgan:PATH``, ...)      one that runs in NumPy/OpenCV (``spectral-residual``,
                           ``fine-grained``) is an error, since it was asked for explicitly
=========================  =================================================================

A SaGIM file whose own E cannot be traced exports without ``edit_masks``, with a note.
"""

from __future__ import annotations

import dataclasses
import logging
import os

from sagim_tf.estimators import build_estimator
from sagim_tf.export.guidance_graph import check_graph_estimator
from sagim_tf.models.loading import check_generator_interface, load_model
from sagim_tf.utils.errors import ConfigError

log = logging.getLogger(__name__)

#: The ``--estimator`` value that exports no ``edit_masks``.
NO_ESTIMATOR = "none"


@dataclasses.dataclass
class ExportSource:
    """G and (maybe) E of a ``.keras`` file, ready to export.

    Attributes:
        generator: keras.Model. G.
        estimator: keras.Model or None. E for ``edit_masks``; None exports without it.
        note: str. Why there is no E ("" when there is one).
    """

    generator: object
    estimator: object = None
    note: str = ""


def load_export_source(path, estimator_spec: str | None = None) -> ExportSource:
    """G and E for ``sagim export`` from a ``.keras`` file (see the module docstring).

    Args:
        path: str or path. A ``.keras`` file holding a SaGIM or a bare G.
        estimator_spec: str or None. ``None`` (the file's own E, if any), ``"none"``, or
            an estimator spec of :func:`~sagim_tf.estimators.build_estimator`.
            Defaults to `None`.

    Raises:
        InputError: the file is missing, corrupt or holds no G.
        ConfigError: an unknown spec, or an explicitly asked-for E that cannot be traced.
    """
    path = os.fspath(path)
    model = load_model(path, "model")
    generator = getattr(model, "generator", model)
    check_generator_interface(generator, path)  # the checks of models.loading.load_generator
    if estimator_spec is not None and estimator_spec.strip().lower() == NO_ESTIMATOR:
        return ExportSource(generator, None, "edit_masks skipped (--estimator none)")
    if estimator_spec is not None:
        estimator = build_estimator(estimator_spec)
        check_graph_estimator(estimator, f"--estimator {estimator_spec}")
        estimator.trainable = False
        return ExportSource(generator, estimator)
    estimator = getattr(model, "estimator", None)
    if estimator is None:
        return ExportSource(
            generator,
            None,
            f"{path} holds only G, so edit_masks is skipped; pass --estimator SPEC (e.g. "
            "itti-koch, what `sagim edit` uses for a bare G) to add it",
        )
    try:
        check_graph_estimator(estimator, "the model's estimator")
    except ConfigError as exc:
        log.info("%s", exc)
        return ExportSource(generator, None, f"edit_masks skipped: {exc}")
    return ExportSource(generator, estimator)
