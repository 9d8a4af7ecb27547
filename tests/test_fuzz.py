"""Fuzz tests (Hypothesis, seeded and bounded): hostile bytes and configs get clear errors.

Random and truncated image bytes always end in an ``InputError`` (never another exception,
never a half-decoded array); random config mappings always end in a ``ConfigError`` or a
valid config. Each property runs a fixed number of examples from a fixed seed, so a run
here and one in CI try the same inputs.
"""

import io
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from PIL import Image

from sagim_tf.training.config import ExperimentConfig, config_from_dict, to_dict
from sagim_tf.utils.errors import ConfigError, InputError
from sagim_tf.utils.io import load_image, load_map

FUZZ = settings(
    max_examples=60,
    deadline=None,  # a shared CI machine: time is not the property under test
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
)


def _encoded(fmt: str) -> bytes:
    rgb = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt)
    return buf.getvalue()


VALID = {fmt: _encoded(fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")}


@FUZZ
@seed(15)
@given(data=st.binary(min_size=0, max_size=2048))
def test_random_bytes_are_an_input_error(tmp_path, data):
    path = tmp_path / "random.png"
    path.write_bytes(data)
    for loader in (load_image, load_map):
        try:
            out = loader(path)
        except InputError:
            continue
        # a few random byte strings are valid tiny images (e.g. a short PBM): then the
        # result is a finite array in range, never garbage
        assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0


@FUZZ
@seed(15)
@given(fmt=st.sampled_from(sorted(VALID)), cut=st.floats(0.0, 0.97), flip=st.integers(0, 10**6))
def test_truncated_and_damaged_images_are_an_input_error_or_an_image(tmp_path, fmt, cut, flip):
    data = bytearray(VALID[fmt][: max(1, int(len(VALID[fmt]) * cut))])
    if flip % 3 == 0 and len(data) > 8:
        data[flip % len(data)] ^= 0xFF
    path = tmp_path / f"damaged.{fmt.lower()}"
    path.write_bytes(bytes(data))
    try:
        out = load_image(path)
    except InputError as exc:
        assert str(path) in str(exc) or path.name in str(exc)
        return
    assert out.shape[-1] == 3 and np.isfinite(out).all()


_SECTIONS = {
    "data": {
        "image_size": st.one_of(
            st.fixed_dictionaries({"height": st.integers(-4, 600), "width": st.integers(-4, 600)}),
            st.lists(st.integers(-4, 600), max_size=3),
            st.text(max_size=5),
        ),
        "guidance": st.sampled_from(["continuous", "binary", "mixed", "other", ""]),
    },
    "train": {
        "epochs": st.integers(-2, 10**6),
        "batch_size": st.one_of(
            st.integers(-2, 64), st.floats(allow_nan=True), st.text(max_size=3)
        ),
        "time_budget_minutes": st.floats(allow_nan=True, allow_infinity=True),
        "precision": st.sampled_from(["float32", "mixed_float16", "mixed_bfloat16", "fp8"]),
    },
    "losses": {
        "rec": st.floats(allow_nan=True, allow_infinity=True),
        "locality": st.floats(-1, 100),
        "color_kernel_size": st.integers(-3, 41),
    },
    "g_optimizer": {
        "learning_rate": st.floats(allow_nan=True, allow_infinity=True),
        "beta_1": st.floats(-1, 6),
        "name": st.sampled_from(["adam", "adamw", "sgd", "lion"]),
    },
    "generator": {
        "head": st.sampled_from(["residual", "operators", "pixels"]),
        "depth": st.integers(-1, 8),
        "field_stride": st.integers(-1, 20),
    },
}


@st.composite
def _config_dicts(draw):
    out = {}
    for section, keys in _SECTIONS.items():
        chosen = draw(st.lists(st.sampled_from(sorted(keys)), unique=True, max_size=len(keys)))
        if chosen:
            out[section] = {k: draw(keys[k]) for k in chosen}
    if draw(st.booleans()):
        out[draw(st.sampled_from(["unknown", "train", "data"]))] = draw(
            st.one_of(st.integers(), st.text(max_size=3), st.none())
        )
    return out


@FUZZ
@seed(15)
@given(data=_config_dicts())
def test_random_configs_are_a_config_error_or_a_valid_config(data):
    try:
        cfg = config_from_dict(data)
    except ConfigError:
        return
    assert isinstance(cfg, ExperimentConfig)
    # a config that validates survives its own file form unchanged
    assert config_from_dict(to_dict(cfg)) == cfg
    height, width = cfg.data.image_size
    assert min(height, width) >= 2**cfg.generator.depth
    assert 0.0 <= cfg.g_optimizer.beta_1 < 1.0 and cfg.g_optimizer.learning_rate > 0
    assert all(math.isfinite(w) and w >= 0 for w in cfg.losses.weights().values())
    assert math.isfinite(cfg.train.time_budget_minutes)


@pytest.mark.parametrize("fmt", sorted(VALID))
def test_the_fuzzed_formats_decode_when_whole(tmp_path, fmt):
    # the seeds of the damage above are real files of each format
    path = tmp_path / f"whole.{fmt.lower()}"
    path.write_bytes(VALID[fmt])
    assert load_image(path).shape == (24, 32, 3)
