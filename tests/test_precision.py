"""Mixed precision (float16 with loss scaling, bfloat16) and XLA: finite, float32 out, equal."""

import keras
import numpy as np
import pytest

from sagim_tf.training.config import load_config
from sagim_tf.training.run import POLICIES, build_model
from tests.helpers import random_batch, tiny_estimator, tiny_sagim


@pytest.fixture
def policy():
    """Set a global dtype policy for one test, and always restore the previous one."""
    previous = keras.mixed_precision.global_policy()

    def set_policy(name):
        keras.mixed_precision.set_global_policy(name)

    yield set_policy
    keras.mixed_precision.set_global_policy(previous)


def _steps(model, n=2):
    image, guidance = random_batch(2, 24, 32, seed=3)
    return [model.train_on_batch((image, guidance), return_dict=True) for _ in range(n)]


def _assert_finite(logs):
    for step in logs:
        assert set(step) >= {"rec_loss", "g_loss", "d_loss"}
        for key, value in step.items():
            assert np.isfinite(value), (key, value, logs)


@pytest.mark.parametrize("precision, scaled", [("mixed_float16", True), ("bfloat16", False)])
def test_build_model_wraps_both_optimizers_for_float16(policy, precision, scaled):
    cfg = load_config(
        None,
        [
            f"train.precision={precision}",
            "generator.base_filters=4",
            "generator.depth=2",
            "discriminator.base_filters=4",
            "features.layers=[block1_conv1]",
            "losses.color_kernel_size=5",
        ],
    )
    policy(POLICIES[cfg.train.precision])
    model = build_model(cfg, estimator=tiny_estimator())
    for opt in (model.g_optimizer, model.d_optimizer):
        assert isinstance(opt, keras.optimizers.LossScaleOptimizer) is scaled
        assert opt.built  # slots exist before a checkpoint restore
    assert model.generator.compute_dtype == ("float16" if scaled else "bfloat16")
    assert model.jit_compile is False
    policy("float32")
    jit = build_model(
        load_config(None, ["train.jit_compile=true", "features.layers=[block1_conv1]"]),
        estimator=tiny_estimator(),
    )
    assert jit.jit_compile is True


def test_mixed_float16_step_is_finite(policy):
    policy("mixed_float16")
    model = tiny_sagim()
    model.compile()
    assert isinstance(model.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(model.d_optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.generator.compute_dtype == "float16"
    _assert_finite(_steps(model))
    image, guidance = random_batch(1, 24, 32)
    out = model.generator([image, guidance])
    assert out.dtype == "float32"
    assert np.isfinite(np.asarray(out)).all()
    # Both optimizers took their steps (a skipped, overflowing step would not count).
    assert int(model.g_optimizer.iterations) == 2 and int(model.d_optimizer.iterations) == 2
    assert float(model.g_optimizer.dynamic_scale) > 1


@pytest.mark.slow
def test_mixed_bfloat16_step_is_finite(policy):
    policy("mixed_bfloat16")
    model = tiny_sagim()
    model.compile()
    for opt in (model.g_optimizer, model.d_optimizer):
        assert not isinstance(opt, keras.optimizers.LossScaleOptimizer)
    assert model.generator.compute_dtype == "bfloat16"
    _assert_finite(_steps(model))
    image, guidance = random_batch(1, 24, 32)
    assert model.generator([image, guidance]).dtype == "float32"


@pytest.mark.slow
def test_jit_compile_matches_eager_graph(policy):
    """XLA on CPU compiles for ~40 s here. SGD: with Adam, biases that feed an instance norm
    (true gradient 0) move by +-lr on the sign of rounding noise."""
    policy("float32")
    logs = {}
    weights = {}
    for jit in (False, True):
        model = tiny_sagim(seed=0)
        model.compile(
            jit_compile=jit,
            g_optimizer=keras.optimizers.SGD(0.05),
            d_optimizer=keras.optimizers.SGD(0.05),
        )
        assert model.jit_compile is jit
        logs[jit] = _steps(model, n=1)[0]
        weights[jit] = model.generator.get_weights() + model.discriminator.get_weights()
    assert set(logs[True]) == set(logs[False])
    for key in logs[False]:
        np.testing.assert_allclose(
            logs[True][key], logs[False][key], rtol=1e-4, atol=1e-6, err_msg=key
        )
    for i, (a, b) in enumerate(zip(weights[True], weights[False])):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5, err_msg=f"variable {i}")
