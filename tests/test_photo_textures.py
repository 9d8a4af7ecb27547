"""Photographic textures for synthetic scenes: deterministic, in range, disjoint sources."""

from __future__ import annotations

import numpy as np
import skimage.data

from sagim_tf.data.photo_textures import (
    EDIT_PHOTO_ALIASES,
    EDIT_PHOTOS,
    TEXTURE_SOURCES,
    cast_shadow,
    load_sources,
    texture,
)


def test_texture_sources_and_edit_photos_are_disjoint():
    edited = set(EDIT_PHOTOS) | set(EDIT_PHOTO_ALIASES)
    assert not edited & set(TEXTURE_SOURCES)
    # compare pixels too, so that an alias we do not know of cannot slip in
    photos = [np.asarray(getattr(skimage.data, n)(), np.float32) / 255 for n in EDIT_PHOTOS]
    for src in load_sources():
        for photo in photos:
            assert src.shape != photo.shape or not np.allclose(src, photo)


def test_same_seed_same_texture_and_range():
    a = texture(np.random.default_rng(7), 48, 64)
    b = texture(np.random.default_rng(7), 48, 64)
    c = texture(np.random.default_rng(8), 48, 64)
    assert a.shape == (48, 64, 3) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert 0.0 <= a.min() and a.max() <= 1.0


def test_textures_look_like_photographs_not_flat_fills():
    rng = np.random.default_rng(0)
    for _ in range(10):
        t = texture(rng, 64, 80)
        assert t.std() > 0.01  # some structure
        # photographs have most energy at low frequencies: neighbours are correlated
        d = np.abs(np.diff(t, axis=1)).mean()
        assert d < t.std()


def test_shadow_darkens_only_near_the_object():
    rng = np.random.default_rng(1)
    img = np.full((60, 80, 3), 0.6, np.float32)
    mask = np.zeros((60, 80), np.float32)
    mask[10:30, 10:30] = 1
    out = cast_shadow(rng, img, mask)
    assert out.min() < 0.55 and out.max() <= 0.6
    assert np.allclose(out[:, 60:], 0.6)  # far from the object, untouched
