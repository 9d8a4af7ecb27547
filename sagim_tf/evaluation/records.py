"""SAM test records as NumPy dicts, the form :func:`evaluate_methods` takes."""

from __future__ import annotations

import numpy as np

from sagim_tf.data import eval_dataset
from sagim_tf.models.generate import generate


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


def generator_method(generator, guidance: str = "continuous"):
    """An evaluation method (image, guidance_binary, guidance) -> edited that runs G.

    G runs through its cached compiled generate step
    (:func:`~sagim_tf.models.generate.generate`), the one the editor uses.

    Args:
        generator: keras.Model. G.
        guidance: str. Which map G receives: ``"continuous"`` (the SAM guidance) or
            ``"binary"``. Defaults to ``"continuous"``.
    """
    if guidance not in ("continuous", "binary"):
        raise ValueError(f"guidance must be 'continuous' or 'binary', got {guidance!r}")

    def method(image, guidance_binary, guidance_map):
        g = guidance_binary if guidance == "binary" else guidance_map
        return generate(generator, image, np.asarray(g, np.float32))

    return method
