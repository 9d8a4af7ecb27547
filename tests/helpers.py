"""Shared test helpers: tiny networks, a tiny frozen stand-in for E, generated data."""

from __future__ import annotations

import importlib.util
import os

import keras
import numpy as np

from sagim_tf.models.content_features import ContentFeatures
from sagim_tf.models.discriminator import PatchDiscriminator
from sagim_tf.models.generator import SaGIMGenerator
from sagim_tf.models.sagim import SaGIM


def tiny_estimator(seed: int = 0) -> keras.Model:
    """A frozen, differentiable stand-in for E: one random conv, then a sigmoid.

    Its output depends on local colour, so G can change it; the real estimators have
    their own tests.
    """
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(
        4,
        3,
        padding="same",
        activation="tanh",
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.8, seed=seed),
    )(inp)
    out = keras.layers.Conv2D(
        1,
        1,
        activation="sigmoid",
        kernel_initializer=keras.initializers.RandomNormal(stddev=1.0, seed=seed + 1),
    )(x)
    model = keras.Model(inp, out, name="tiny_estimator")
    model.trainable = False
    return model


def tiny_sagim(seed: int = 0, head: str = "residual", **kwargs):
    keras.utils.set_random_seed(seed)
    return SaGIM(
        generator=SaGIMGenerator(base_filters=8, depth=2, num_residual_blocks=1, head=head),
        discriminator=PatchDiscriminator(base_filters=8, num_layers=2),
        estimator=tiny_estimator(seed),
        content_features=ContentFeatures(
            layers=("block1_conv1", "block1_conv2", "block2_conv1"), weights=None, seed=seed
        ),
        color_kernel_size=5,
        **kwargs,
    )


def random_batch(batch=2, height=24, width=32, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.uniform(0.0, 1.0, (batch, height, width, 3)).astype(np.float32)
    guidance = rng.uniform(0.0, 1.0, (batch, height, width, 1)).astype(np.float32)
    return image, guidance


#: A tiny operator-head G: fields every 8 pixels, trained at a longer side of 48.
TINY_OPERATOR_G = dict(
    base_filters=4, depth=2, num_residual_blocks=1, head="operators", field_stride=8, work_size=48
)


def tiny_operator_g(**kwargs):
    """A :data:`TINY_OPERATOR_G` generator, ``kwargs`` overriding its arguments."""
    return SaGIMGenerator(**{**TINY_OPERATOR_G, **kwargs})


def nudge_operator_head(generator, seed: int = 1, kernel_std: float = 0.3, bias_std: float = 0.5):
    """Give an operator-head G's zero-initialised last layer random weights, so that its
    fields are not all zero (an untrained head returns the photo). Returns G."""
    rng = np.random.default_rng(seed)
    layer = generator.get_layer("fields_coarse")
    kernel, bias = layer.get_weights()
    layer.set_weights(
        [
            rng.normal(0, kernel_std, kernel.shape).astype(np.float32),
            rng.normal(0, bias_std, bias.shape).astype(np.float32),
        ]
    )
    return generator


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(name: str):
    """``scripts/NAME.py`` imported as a module (the scripts folder is not a package)."""
    spec = importlib.util.spec_from_file_location(
        f"{name}_script", os.path.join(ROOT, "scripts", f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_demo_folder(root, sam_dir):
    """A folder laid out as ``sagim demo`` leaves it, for the scripts that read one: a
    nudged tiny operator-head G in ``run/generator.keras`` and ``sam`` linked to
    ``sam_dir``. Returns the folder."""
    demo = root / "demo"
    (demo / "run").mkdir(parents=True)
    os.symlink(sam_dir, demo / "sam")
    g = nudge_operator_head(tiny_operator_g(), seed=3, kernel_std=0.1, bias_std=0.2)
    g.save(demo / "run" / "generator.keras")
    return demo
