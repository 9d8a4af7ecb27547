"""SAM test records as NumPy dicts, the form :func:`evaluate_methods` takes."""

from __future__ import annotations

import numpy as np

from sagim_tf.data import eval_dataset
from sagim_tf.models.generate import generate
from sagim_tf.models.refine import FieldRefiner


def load_records(data_dir, split: str = "test", size=None, limit: int | None = None) -> list[dict]:
    """Read up to ``limit`` records of a SAM split, in stored order (deterministic).

    Each dict has ``id``, ``image`` (H, W, 3), ``guidance``, ``guidance_binary``,
    ``saliency`` (H, W, 1), ``mask_low`` and ``mask_high`` (H, W), float32.
    """
    records = []
    for batch in eval_dataset(data_dir, split=split, batch_size=8, size=size, deterministic=True):
        batch = {k: np.asarray(v) for k, v in batch.items()}
        for i in range(len(batch["image"])):
            if limit is not None and len(records) >= limit:
                return records
            records.append(
                {
                    "id": int(batch["image_id"][i]),
                    "image": batch["image"][i],
                    "guidance": batch["guidance"][i],
                    "guidance_binary": batch["guidance_binary"][i],
                    "saliency": batch["saliency"][i],
                    "mask_low": batch["mask_low"][i, ..., 0] > 0.5,
                    "mask_high": batch["mask_high"][i, ..., 0] > 0.5,
                }
            )
    return records


def generator_method(
    generator,
    guidance: str = "continuous",
    refine_steps: int = 0,
    estimator=None,
    refine_weights=None,
):
    """An evaluation method (image, guidance_binary, guidance) -> edited that runs G.

    G runs through its cached compiled generate step
    (:func:`~sagim_tf.models.generate.generate`), the one the editor uses.

    Args:
        generator: keras.Model. G.
        guidance: str. Which map G receives: ``"continuous"`` (the SAM guidance) or
            ``"binary"``. Defaults to ``"continuous"``.
        refine_steps: int. With an operator-head G, refine its fields for each image by
            this many steps against ``estimator``
            (:class:`~sagim_tf.models.refine.FieldRefiner`). Defaults to 0 (G alone).
        estimator: the E that refinement follows; needed when ``refine_steps`` > 0.
        refine_weights: dict or None. Refinement's objective weights (``rec``,
            ``locality``, ``settings``); None keeps
            :data:`~sagim_tf.models.refine.REFINE_WEIGHTS`.
    """
    if guidance not in ("continuous", "binary"):
        raise ValueError(f"guidance must be 'continuous' or 'binary', got {guidance!r}")
    refiner = None
    if refine_steps:
        if estimator is None:
            raise ValueError("refine_steps > 0 needs the estimator E that refinement follows")
        refiner = FieldRefiner(generator, estimator, steps=refine_steps, weights=refine_weights)

    def method(image, guidance_binary, guidance_map):
        g = np.asarray(guidance_binary if guidance == "binary" else guidance_map, np.float32)
        if refiner is not None:
            return refiner.edit(image, g)
        return generate(generator, image, g)

    return method
