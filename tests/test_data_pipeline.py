"""tf.data views of a built SAM folder: shapes, ranges, flips, determinism, resize, model.fit."""

import os

import keras
import numpy as np
import pytest

from sagim_tf.data import eval_dataset, read_manifest, read_records, train_dataset
from sagim_tf.utils.errors import ConfigError, InputError


@pytest.fixture(scope="module")
def sam(tiny_sam):
    """The session's tiny SAM set (8 train, 4 test records at 32x24), read only."""
    out, _ = tiny_sam
    return out, read_manifest(out)


def _arrays(ds):
    return [tuple(t.numpy() for t in batch) for batch in ds]


def test_train_batches(sam):
    out, manifest = sam
    batches = _arrays(train_dataset(out, batch_size=3, seed=0))
    assert [b[0].shape[0] for b in batches] == [3, 3, 2]
    for img, g in batches:
        assert img.dtype == np.float32 and g.dtype == np.float32
        assert img.shape[1:] == (24, 32, 3) and g.shape[1:] == (24, 32, 1)
        assert 0 <= img.min() and img.max() <= 1 and 0 <= g.min() and g.max() <= 1
    again = _arrays(train_dataset(out, batch_size=3, seed=0))
    for (a, b), (c, d) in zip(batches, again):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    ds = train_dataset(out, batch_size=4, seed=0, drop_remainder=True, guidance="binary")
    assert ds.element_spec[0].shape.as_list() == [4, 24, 32, 3]
    assert ds.element_spec[1].shape.as_list() == [4, 24, 32, 1]
    for _, g in ds:
        assert set(np.unique(g.numpy())) <= {0.0, 1.0}


def test_mixed_guidance_draws_each_kind_per_example(sam):
    out, _ = sam
    kw = dict(batch_size=8, shuffle=False, flip=False, seed=0)
    cont = _arrays(train_dataset(out, guidance="continuous", **kw))
    binary = _arrays(train_dataset(out, guidance="binary", **kw))
    mixed = _arrays(train_dataset(out, guidance="mixed", **kw))
    kinds = []
    for (ic, gc), (_, gb), (im, gm) in zip(cont, binary, mixed):
        np.testing.assert_array_equal(im, ic)
        for k in range(len(gm)):
            is_c, is_b = np.array_equal(gm[k], gc[k]), np.array_equal(gm[k], gb[k])
            assert is_c or is_b
            kinds.append("binary" if is_b else "continuous")
    assert set(kinds) == {"binary", "continuous"}, kinds
    again = _arrays(train_dataset(out, guidance="mixed", **kw))
    for (_, a), (_, b) in zip(mixed, again):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError, match="mixed"):
        train_dataset(out, guidance="soft")


def test_flip_moves_image_and_guidance_together(sam):
    out, _ = sam
    plain = _arrays(train_dataset(out, batch_size=8, shuffle=False, flip=False, deterministic=True))
    flipped = _arrays(train_dataset(out, batch_size=8, shuffle=False, flip=True, seed=3))
    n_flipped = n_same = 0
    for (i0, g0), (i1, g1) in zip(plain, flipped):
        for k in range(len(i0)):
            if np.array_equal(i1[k], i0[k]) and np.array_equal(g1[k], g0[k]):
                n_same += 1
            else:
                np.testing.assert_array_equal(i1[k], i0[k][:, ::-1])
                np.testing.assert_array_equal(g1[k], g0[k][:, ::-1])
                n_flipped += 1
    assert n_flipped > 0 and n_same > 0 and n_flipped + n_same == 8


def test_eval_view_and_resize(sam):
    out, manifest = sam
    records = [
        r
        for s in manifest["shards"]
        if s["split"] == "test"
        for r in read_records(os.path.join(out, s["file"]))
    ]
    batches = list(eval_dataset(out, batch_size=4))
    got = {k: np.concatenate([b[k].numpy() for b in batches]) for k in batches[0]}
    assert len(got["image_id"]) == manifest["counts"]["test"] == len(records)
    assert list(got["image_id"]) == [r["image_id"] for r in records]
    for k in ("saliency", "guidance", "guidance_binary", "mask_low", "mask_high"):
        want = np.stack([r[k] for r in records]).astype(np.float32) / 255.0
        # uint8 -> [0, 1] in float32 both ways; the two orders of rounding differ by an ulp.
        np.testing.assert_allclose(got[k], want, atol=1e-6)
    np.testing.assert_array_equal(got["guidance_binary"], got["mask_low"])
    assert np.abs(got["image"] - np.stack([r["image"] for r in records]) / 255.0).mean() < 0.02
    assert list(got["low_ann_id"]) == [r["low_ann_id"] for r in records]

    small = next(iter(eval_dataset(out, batch_size=2, size=(16, 12))))
    assert small["image"].shape == (2, 12, 16, 3) and small["guidance"].shape == (2, 12, 16, 1)
    assert set(np.unique(small["mask_high"].numpy())) <= {0.0, 1.0}
    img, g = next(iter(train_dataset(out, batch_size=2, size=(40, 30), seed=1)))
    assert img.shape == (2, 30, 40, 3) and g.shape == (2, 30, 40, 1)


def test_errors(sam, tmp_path):
    out, _ = sam
    with pytest.raises(InputError, match="manifest"):
        train_dataset(str(tmp_path))
    with pytest.raises(ConfigError):
        train_dataset(out, split="val")
    with pytest.raises(ConfigError):
        train_dataset(out, guidance="soft")


def test_batches_train_a_model_with_fit(sam):
    """The training view feeds ``model.fit`` directly (a stand-in image -> guidance model)."""
    out, _ = sam
    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    y = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(x)
    model = keras.Model(inp, y)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    ds = train_dataset(out, batch_size=4, seed=0, repeat=True)
    hist = model.fit(ds, epochs=2, steps_per_epoch=3, verbose=0, shuffle=False)
    assert np.isfinite(hist.history["loss"]).all()
