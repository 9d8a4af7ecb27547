"""SaGIM's train_step, test_step, freezing, ablations, saving and input checks."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagim_tf import ContentFeatures, PatchDiscriminator, SaGIM, SaGIMGenerator
from sagim_tf.estimators import build_estimator
from sagim_tf.models.generate import make_generate_function
from sagim_tf.utils.errors import ConfigError, InputError
from tests.helpers import random_batch, tiny_sagim

ALL_TERMS = {"rec_loss", "content_loss", "color_loss", "cycle_loss", "adv_loss", "g_loss", "d_loss"}


def _weights(model):
    return [np.array(v) for v in model.weights]


def _dataset(batch=2, n=4, height=24, width=32, seed=0):
    image, guidance = random_batch(n, height, width, seed)
    return tf.data.Dataset.from_tensor_slices((image, guidance)).batch(batch)


def test_fit_reports_all_five_losses_and_freezes_e_and_vgg():
    model = tiny_sagim()
    model.compile()
    e_before, phi_before = _weights(model.estimator), _weights(model.content_features)
    g_before, d_before = _weights(model.generator), _weights(model.discriminator)
    history = model.fit(_dataset(), epochs=2, verbose=0)
    assert set(history.history) == ALL_TERMS
    assert all(np.isfinite(v).all() for v in history.history.values())
    for a, b in zip(e_before, _weights(model.estimator)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(phi_before, _weights(model.content_features)):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(g_before, _weights(model.generator)))
    assert any(not np.array_equal(a, b) for a, b in zip(d_before, _weights(model.discriminator)))
    assert int(model.g_optimizer.iterations) == 4 and int(model.d_optimizer.iterations) == 4
    # G's optimizer holds G's variables only, D's holds D's.
    g_paths = {v.path for v in model.generator.trainable_variables}
    assert len(model.g_optimizer._trainable_variables) == len(g_paths)
    logs = model.evaluate(_dataset(), return_dict=True, verbose=0)
    assert set(logs) == ALL_TERMS


def test_no_phantom_step_when_a_dataset_of_unknown_length_runs_out():
    """Keras counts a step whose input ran out unless the update depends on the data."""
    model = tiny_sagim()
    model.compile()
    ds = _dataset(n=6).filter(lambda image, guidance: True)  # 3 batches, length unknown
    assert int(ds.cardinality()) == int(tf.data.UNKNOWN_CARDINALITY)
    model.fit(ds, epochs=2, verbose=0)
    assert int(model.g_optimizer.iterations) == 6
    assert int(model.d_optimizer.iterations) == 6


def test_adversarial_weight_zero_leaves_d_untouched_and_skips_terms():
    model = tiny_sagim()
    model.compile(loss_weights={"adv": 0.0, "cycle": 0.0})
    d_before = _weights(model.discriminator)
    history = model.fit(_dataset(), epochs=1, verbose=0)
    for a, b in zip(d_before, _weights(model.discriminator)):
        np.testing.assert_array_equal(a, b)
    assert int(model.d_optimizer.iterations) == 0
    assert set(history.history) == {"rec_loss", "content_loss", "color_loss", "g_loss"}


def test_adversarial_warmup_ramps_g_adv_weight():
    model = tiny_sagim()
    model.compile(adv_warmup_steps=4)
    image, guidance = random_batch(2, 24, 32, seed=2)
    # test_step reports G's total with the weights of the current G step: step 1 of 4 here.
    logs = model.test_on_batch((image, guidance), return_dict=True)
    full = {"rec": 5.0, "content": 5.0, "color": 1.0, "cycle": 9.0, "adv": 5.0}
    expected = (
        sum(full[k] * logs[f"{k}_loss"] for k in full if k != "adv") + 5.0 * 0.25 * logs["adv_loss"]
    )
    np.testing.assert_allclose(logs["g_loss"], expected, rtol=1e-5)
    model.fit(_dataset(n=8), epochs=1, verbose=0)  # 4 steps: the ramp is over
    assert int(model.d_optimizer.iterations) == 4  # D trains from the first step
    np.testing.assert_allclose(float(model.effective_loss_weights()["adv"]), 5.0)
    assert model.get_compile_config()["adv_warmup_steps"] == 4
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ConfigError, match="adv_warmup_steps"):
            tiny_sagim().compile(adv_warmup_steps=bad)


def test_training_brings_reconstruction_loss_down():
    model = tiny_sagim(seed=1)
    model.compile(
        g_optimizer=keras.optimizers.Adam(2e-3),
        loss_weights={"adv": 0.0, "cycle": 0.0, "content": 1.0},
    )
    image, guidance = random_batch(4, 16, 16, seed=5)
    ds = tf.data.Dataset.from_tensor_slices((image, guidance)).batch(4).repeat(40)
    first = model.test_on_batch((image, guidance), return_dict=True)["rec_loss"]
    model.fit(ds, epochs=1, verbose=0)
    last = model.test_on_batch((image, guidance), return_dict=True)["rec_loss"]
    assert last < first - 0.01, (first, last)


def test_config_json_round_trip():
    model = tiny_sagim()
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
    clone = keras.saving.deserialize_keras_object(config)
    assert isinstance(clone, SaGIM)
    assert clone.generator.get_config() == model.generator.get_config()
    assert clone.discriminator.get_config() == model.discriminator.get_config()
    assert clone.content_features.layer_names == model.content_features.layer_names
    assert clone.color_kernel_size == 5
    assert clone.count_params() == model.count_params()


def test_keras_save_load_restores_weights_and_optimizers(tmp_path):
    model = tiny_sagim()
    model.compile(g_optimizer=keras.optimizers.Adam(5e-4), loss_weights={"color": 2.0})
    model.fit(_dataset(), epochs=1, verbose=0)
    path = tmp_path / "sagim.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    image, guidance = random_batch(2, 24, 32, seed=9)
    np.testing.assert_array_equal(
        np.asarray(model((image, guidance))), np.asarray(loaded((image, guidance)))
    )
    assert int(loaded.g_optimizer.iterations) == int(model.g_optimizer.iterations) == 2
    assert int(loaded.d_optimizer.iterations) == 2
    assert np.isclose(float(loaded.g_optimizer.learning_rate), 5e-4)
    assert loaded.loss_weights["color"] == 2.0
    for a, b in zip(model.g_optimizer.variables, loaded.g_optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(model.d_optimizer.variables, loaded.d_optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Training resumes from the restored state identically.
    model.fit(_dataset(seed=3), epochs=1, verbose=0)
    loaded.fit(_dataset(seed=3), epochs=1, verbose=0)
    for a, b in zip(model.generator.weights, loaded.generator.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_input_errors_name_the_problem():
    model = tiny_sagim()
    image, guidance = random_batch(1, 16, 16)
    with pytest.raises(InputError, match="does not match"):
        model((image, guidance[:, :8]))
    with pytest.raises(InputError, match=r"\(H, W, 1\)"):
        model((image, np.concatenate([guidance, guidance], axis=-1)))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        model((image, guidance * 2.0))
    bad = guidance.copy()
    bad[0, 3, 3, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        model((image, bad))
    with pytest.raises(InputError, match="RGB"):
        model.edit(image[..., :2], guidance)
    model.compile()
    with pytest.raises(tf.errors.InvalidArgumentError, match="guidance values must lie in"):
        model.train_on_batch((image, guidance * 3.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN"):
        model.train_on_batch((image, bad))
    fresh = tiny_sagim()
    fresh.compile()
    with pytest.raises(InputError, match="height"):
        fresh.train_on_batch((image, guidance[:, :8]))


def test_edit_numpy_api_and_compile_errors():
    model = tiny_sagim()
    image, guidance = random_batch(3, 16, 20)
    out = model.edit((image[0] * 255).astype(np.uint8), guidance[0, ..., 0])
    assert out.shape == (16, 20, 3) and out.dtype == np.float32
    assert model.edit(image, guidance, batch_size=2).shape == image.shape
    with pytest.raises(ConfigError, match="unknown loss weight"):
        model.compile(loss_weights={"style": 1.0})
    with pytest.raises(ConfigError, match=">= 0"):
        model.compile(loss_weights={"rec": -1.0})
    with pytest.raises(ConfigError, match="not used"):
        model.compile(optimizer="adam")


def test_edit_goes_through_the_compiled_generate_step():
    model = tiny_sagim()
    image, guidance = random_batch(3, 16, 20, seed=4)
    out = model.edit(image, guidance, batch_size=2)
    step = make_generate_function(model.generator)
    assert step.experimental_get_tracing_count() == 1  # two batches (2 + 1), one trace
    # Graph against eager: grappler may fuse kernels and reorder float32 sums.
    np.testing.assert_allclose(
        out, np.asarray(model.generator([image, guidance], training=False)), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("cycle, passes", [(0.0, 1), (9.0, 2)])
def test_one_forward_pass_of_g_per_step(monkeypatch, cycle, passes):
    """G runs once per step (twice with the cycle term, whose second pass is G(I~, E(I)))."""
    model = tiny_sagim()
    model.compile(loss_weights={"cycle": cycle}, run_eagerly=True)
    calls = []
    real_call = model.generator.call
    monkeypatch.setattr(
        model.generator, "call", lambda *a, **k: calls.append(1) or real_call(*a, **k)
    )
    logs = model.train_on_batch(random_batch(2, 16, 16), return_dict=True)
    assert len(calls) == passes
    assert "d_loss" in logs and int(model.d_optimizer.iterations) == 1


def _itti_koch_sagim(estimator):
    return SaGIM(
        SaGIMGenerator(base_filters=4, depth=2, num_residual_blocks=1),
        PatchDiscriminator(base_filters=4, num_layers=2),
        estimator,
        ContentFeatures(layers=("block1_conv1",)),
    )


def test_jit_compile_needs_the_estimators_xla_form():
    # XLA has no kernel for TF's antialiased resize: compile refuses, and names the fix.
    model = _itti_koch_sagim(build_estimator("itti-koch"))
    with pytest.raises(ConfigError, match=r"build_estimator\(spec, jit_compile=True\)"):
        model.compile(jit_compile=True)
    assert model.estimator.antialias is True  # not flipped behind the caller's back
    model.compile()  # "auto": XLA stays off for this estimator on any device
    assert model.jit_compile is False

    model = _itti_koch_sagim(build_estimator("itti-koch", jit_compile=True))
    assert model.estimator.antialias is False
    model.compile(jit_compile=True)
    assert model.jit_compile is True
    image, guidance = random_batch(2, 48, 64)
    logs = model.train_on_batch((image, guidance), return_dict=True)
    assert all(np.isfinite(v) for v in logs.values())
