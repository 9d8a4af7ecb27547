"""SAM test records as NumPy dicts, the form :func:`evaluate_methods` takes."""

from __future__ import annotations

import numpy as np


def load_records(data_dir, split: str = "test", size=None, limit: int | None = None) -> list[dict]:
    """Read up to ``limit`` records of a SAM split, in stored order (deterministic).

    Each dict has ``id``, ``image`` (H, W, 3), ``guidance``, ``guidance_binary``,
    ``saliency`` (H, W, 1), ``mask_low`` and ``mask_high`` (H, W), float32.
    """
    from sagim_tf.data import eval_dataset

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
    """An evaluation method (image, guidance_binary, guidance) -> edited that runs G."""
    if guidance not in ("continuous", "binary"):
        raise ValueError(f"guidance must be 'continuous' or 'binary', got {guidance!r}")

    def method(image, guidance_binary, guidance_map):
        g = guidance_binary if guidance == "binary" else guidance_map
        g = np.asarray(g, np.float32)
        if g.ndim == 2:
            g = g[..., None]
        out = generator([image[None].astype(np.float32), g[None]], training=False)
        return np.clip(np.asarray(out, np.float32)[0], 0.0, 1.0)

    return method
