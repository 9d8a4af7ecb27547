"""The five losses: minimum on identical inputs, positive otherwise, equal to NumPy."""

import keras
import numpy as np
import pytest

from sagim_tf.layers import GaussianBlur, gaussian_kernel_1d
from sagim_tf.losses import (
    color_loss,
    content_loss,
    cycle_loss,
    discriminator_loss,
    generator_adversarial_loss,
    reconstruction_loss,
)

RNG = np.random.default_rng(0)


def np_blur(x, size, sigma=None):
    taps = gaussian_kernel_1d(size, sigma).astype(np.float64)
    pad = size // 2
    x = np.pad(x.astype(np.float64), ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    h, w = x.shape[1] - 2 * pad, x.shape[2] - 2 * pad
    horiz = sum(taps[k] * x[:, :, k : k + w, :] for k in range(size))
    return sum(taps[k] * horiz[:, k : k + h, :, :] for k in range(size))


def np_bce(s, p, eps=1e-6):
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(s * np.log(p) + (1 - s) * np.log(1 - p)))


def np_softplus(x):
    return np.logaddexp(0.0, x)


def test_gaussian_kernel_matches_opencv_rule():
    taps = gaussian_kernel_1d(21)
    assert taps.shape == (21,)
    # float32 taps normalised in float64: the sum is 1 up to float32 rounding.
    assert np.isclose(taps.sum(), 1.0, rtol=1e-6)
    r = np.arange(21) - 10
    ref = np.exp(-0.5 * (r / 3.5) ** 2)
    # The taps are stored as float32 (relative rounding ~6e-8); 1e-6 leaves room.
    np.testing.assert_allclose(taps, ref / ref.sum(), rtol=1e-6)
    with pytest.raises(ValueError, match="odd"):
        gaussian_kernel_1d(20)


def test_gaussian_blur_layer_matches_numpy():
    x = RNG.uniform(size=(2, 17, 23, 3)).astype(np.float32)
    ours = np.asarray(GaussianBlur(7)(x))
    # float32 depthwise convolutions against a float64 reference: 14 products, values <= 1.
    np.testing.assert_allclose(ours, np_blur(x, 7), atol=1e-5)
    flat = np.full((1, 16, 16, 3), 0.3, np.float32)
    # A flat image stays flat; only float32 rounding of 42 weighted sums moves it.
    np.testing.assert_allclose(np.asarray(GaussianBlur(21)(flat)), flat, atol=1e-6)


def test_reconstruction_loss():
    s = RNG.uniform(size=(2, 8, 8, 1)).astype(np.float32)
    p = RNG.uniform(size=(2, 8, 8, 1)).astype(np.float32)
    # float32 logs and a 128-term mean against float64 NumPy.
    assert np.isclose(float(reconstruction_loss(s, p)), np_bce(s, p), rtol=1e-5)
    # Minimum at p == s: the entropy of s; zero for binary guidance.
    at_min = float(reconstruction_loss(s, s))
    assert at_min < float(reconstruction_loss(s, p))
    # Same float32-against-float64 rounding as above.
    assert np.isclose(at_min, np_bce(s, s), rtol=1e-5)
    binary = (s > 0.5).astype(np.float32)
    assert float(reconstruction_loss(binary, binary)) < 1e-5
    assert float(reconstruction_loss(binary, 1 - binary)) > 5.0


def test_content_and_cycle_losses():
    a = [
        RNG.normal(size=(2, 6, 6, 4)).astype(np.float32),
        RNG.normal(size=(2, 3, 3, 8)).astype(np.float32),
    ]
    b = [RNG.normal(size=x.shape).astype(np.float32) for x in a]
    ref = np.mean([np.mean((x - y) ** 2) for x, y in zip(a, b)])
    # float32 squares and means over ~200 values against float64 NumPy.
    assert np.isclose(float(content_loss(a, b)), ref, rtol=1e-5)
    assert np.isclose(float(cycle_loss(a, b)), ref, rtol=1e-5)
    assert float(content_loss(a, a)) == 0.0
    assert float(cycle_loss(b, b)) == 0.0
    with pytest.raises(ValueError, match="equally long"):
        content_loss(a, b[:1])


def test_color_loss():
    img = RNG.uniform(size=(2, 16, 20, 3)).astype(np.float32)
    edited = np.clip(img + RNG.normal(0, 0.2, img.shape), 0, 1).astype(np.float32)
    s = RNG.uniform(size=(2, 16, 20, 1)).astype(np.float32)
    ref = np.mean(
        np.sum(s * np.abs(np_blur(img, 21) - np_blur(edited, 21)), axis=(1, 2, 3)) / (16 * 20)
    )
    # Two float32 21-tap blurs and a 960-term sum against float64: rounding adds up to ~1e-5.
    assert np.isclose(float(color_loss(img, edited, s)), ref, rtol=1e-4)
    assert float(color_loss(img, img, s)) == 0.0
    assert float(color_loss(img, edited, s)) > 0.0
    # Zero guidance: colour may change freely.
    assert float(color_loss(img, edited, np.zeros_like(s))) == 0.0


def test_adversarial_losses():
    real = RNG.normal(size=(2, 4, 4, 1)).astype(np.float32)
    fake = RNG.normal(size=(2, 4, 4, 1)).astype(np.float32)
    ref_d = np.mean(np_softplus(-real)) + np.mean(np_softplus(fake))
    ref_g = np.mean(np_softplus(-fake))
    # float32 softplus and means against float64 NumPy.
    assert np.isclose(float(discriminator_loss(real, fake)), ref_d, rtol=1e-5)
    assert np.isclose(float(generator_adversarial_loss(fake)), ref_g, rtol=1e-5)
    # Minimum (towards zero) when D is right / fooled; stable for huge logits.
    big = np.full((1, 2, 2, 1), 50.0, np.float32)
    assert float(discriminator_loss(big, -big)) < 1e-6
    assert float(generator_adversarial_loss(big)) < 1e-6
    assert float(discriminator_loss(-big, big)) > 99.0
    assert np.isfinite(float(generator_adversarial_loss(-1e4 * np.ones((1, 1, 1, 1), np.float32))))


def test_locality_loss_weighs_change_only_where_no_change_is_asked():
    from sagim_tf.losses import keep_weight, locality_loss

    image = RNG.uniform(0, 1, (2, 8, 10, 3)).astype(np.float32)
    saliency = RNG.uniform(0, 1, (2, 8, 10, 1)).astype(np.float32)
    guidance = saliency.copy()
    top = saliency[:, :4]
    guidance[:, :4] = np.where(top < 0.5, top + 0.3, top - 0.3)  # top half: asked to change
    edited = image.copy()
    edited[:, :4] = 1.0 - image[:, :4]  # a change where the guidance asks for one
    # weights are 1 where the maps agree and 0 where they differ by the tolerance or more
    w = np.asarray(keep_weight(guidance, saliency, tolerance=0.1))
    assert np.all(w[:, 4:] == 1.0) and np.all(w[:, :4] == 0.0)
    assert float(locality_loss(image, image, guidance, saliency)) == 0.0
    assert float(locality_loss(image, edited, guidance, saliency)) == 0.0
    # the same change below, where nothing was asked, costs its mean absolute size
    drifted = image.copy()
    drifted[:, 4:] = np.clip(image[:, 4:] - 0.2, 0, 1)
    expected = np.mean(np.abs(drifted - image).mean(-1))
    # float32 sums over 160 pixels: a few ulps
    np.testing.assert_allclose(
        float(locality_loss(image, drifted, guidance, saliency)), expected, rtol=1e-5
    )
    with pytest.raises(ValueError, match="tolerance"):
        keep_weight(guidance, saliency, tolerance=0.0)


def test_sagim_trains_with_the_locality_term_only_when_asked():
    from tests.helpers import random_batch, tiny_sagim

    image, guidance = random_batch(2, 24, 32)
    model = tiny_sagim()
    model.compile(loss_weights={"adv": 0.0, "cycle": 0.0, "locality": 10.0})
    logs = model.train_on_batch({"image": image, "guidance": guidance}, return_dict=True)
    assert np.isfinite(logs["locality_loss"]) and logs["locality_loss"] >= 0.0
    plain = tiny_sagim()
    plain.compile(loss_weights={"adv": 0.0})
    assert "locality_loss" not in plain.train_on_batch(
        {"image": image, "guidance": guidance}, return_dict=True
    )


def _costs_vector(costs):
    from sagim_tf.layers.photo_operators import OPERATOR_NAMES

    return np.array([costs.get(name, 1.0) for name in OPERATOR_NAMES])


def test_settings_loss_is_the_costed_mean_share_of_each_settings_range():
    from sagim_tf.losses import settings_loss
    from sagim_tf.losses.settings import OPERATOR_COSTS

    assert float(settings_loss(np.zeros((2, 4, 5, 7), np.float32))) == 0.0
    fields = np.random.default_rng(0).normal(0, 2, (2, 4, 5, 7)).astype(np.float32)
    shares = np.abs(np.tanh(fields.astype(np.float64)))
    for costs in (None, {}, {"saturation": 3.0, "exposure": 0.0}):
        expected = (shares * _costs_vector(OPERATOR_COSTS if costs is None else costs)).mean()
        # float32 tanh and mean against float64
        np.testing.assert_allclose(float(settings_loss(fields, costs)), expected, rtol=1e-5)
    # bounded by the mean cost; float32 sum of seven costs
    np.testing.assert_allclose(
        float(settings_loss(np.full((1, 2, 2, 7), 50.0, np.float32))),
        _costs_vector(OPERATOR_COSTS).mean(),
        rtol=1e-6,
    )
    # colour is dearer than tone: the same setting costs more in saturation than in exposure
    sat = np.zeros((2, 1, 1, 1, 7), np.float32)
    sat[0, ..., 5], sat[1, ..., 2] = 1.0, 1.0
    assert float(settings_loss(sat[0])) == 4 * float(settings_loss(sat[1])) > 0
    with pytest.raises(ValueError, match="unknown operators.*'hue'"):
        settings_loss(fields, {"hue": 1.0})


def test_the_settings_prior_pulls_the_operator_heads_settings_to_zero(tmp_path):
    from sagim_tf.losses.settings import OPERATOR_COSTS
    from sagim_tf.models.generate import predict_fields
    from tests.helpers import nudge_operator_head, random_batch, tiny_sagim

    image, guidance = random_batch(2, 24, 32)
    batch = {"image": image, "guidance": guidance}
    model = tiny_sagim(head="operators")
    nudge_operator_head(model.generator)
    only_prior = {name: 0.0 for name in ("rec", "content", "color", "cycle", "adv")}
    model.compile(
        g_optimizer=keras.optimizers.SGD(1.0), loss_weights={**only_prior, "settings": 1.0}
    )

    def mean_setting():
        fields = [predict_fields(model.generator, image[i], guidance[i]) for i in range(2)]
        return (np.abs(np.tanh(np.stack(fields))) * _costs_vector(OPERATOR_COSTS)).mean()

    before = mean_setting()
    logs = [model.train_on_batch(batch, return_dict=True)["settings_loss"] for _ in range(5)]
    after = mean_setting()
    # the logged term is the fields' costed mean |tanh| (float32 rounding, training=False vs True
    # is the same for these layers), and it falls under its own gradient
    np.testing.assert_allclose(logs[0], before, rtol=1e-4)
    assert after < 0.7 * before and logs[-1] < logs[0]
    # the second output is not saved: the file holds G once and loads back
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert len(loaded.weights) == len(model.weights)


def test_the_settings_prior_needs_the_operator_head():
    from sagim_tf.utils.errors import ConfigError
    from tests.helpers import tiny_sagim

    with pytest.raises(ConfigError, match="losses.settings is a prior on the operator head"):
        tiny_sagim().compile(loss_weights={"settings": 1.0})
