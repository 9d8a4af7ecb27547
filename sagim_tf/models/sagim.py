"""SaGIM: G, D, a frozen saliency estimator E and frozen VGG features, trained by ``fit``.

This module holds the TensorFlow-specific part of the package (gradient tapes, the
distribution-aware loss scaling, in-graph input checks); the networks and losses it uses
are backend-agnostic.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from sagim_tf.models.content_features import ContentFeatures
from sagim_tf.models.discriminator import PatchDiscriminator
from sagim_tf.utils.errors import ConfigError, InputError
from sagim_tf.models.generator import SaGIMGenerator
from sagim_tf.layers.gaussian_blur import GaussianBlur
from sagim_tf.losses import (
    LOSS_NAMES,
    PAPER_LOSS_WEIGHTS,
    color_loss,
    content_loss,
    cycle_loss,
    discriminator_loss,
    generator_adversarial_loss,
    reconstruction_loss,
)
from sagim_tf.utils.checks import check_image, check_map, check_static_pair

METRIC_NAMES = tuple(f"{name}_loss" for name in LOSS_NAMES) + ("g_loss", "d_loss")


def normalize_loss_weights(loss_weights) -> dict:
    """Fill in the paper's 5:5:1:9:5 for missing terms; reject unknown or invalid ones."""
    weights = dict(PAPER_LOSS_WEIGHTS)
    if loss_weights is None:
        return weights
    if not isinstance(loss_weights, dict):
        raise ConfigError(f"loss_weights must be a dict like {PAPER_LOSS_WEIGHTS}, got {loss_weights!r}")
    for key, value in loss_weights.items():
        if key not in weights:
            raise ConfigError(f"unknown loss weight {key!r}; known: {', '.join(LOSS_NAMES)}")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"loss weight {key!r} must be a number, got {value!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"loss weight {key!r} must be finite and >= 0, got {value}")
        weights[key] = value
    return weights


def _default_estimator():
    from sagim_tf.estimators import build_estimator

    return build_estimator("itti-koch")


@keras.saving.register_keras_serializable(package="sagim_tf")
class SaGIM(keras.Model):
    """Saliency-guided image manipulation (Chen et al., BMVC 2019), trained with ``fit``.

    Holds the manipulation network G, the PatchGAN discriminator D, a frozen
    differentiable saliency estimator E and frozen VGG content features phi.
    ``model((image, guidance))`` returns G's edit. ``fit`` takes batches of
    ``(image, guidance)`` (or dicts with those keys): images (B, H, W, 3) and guiding maps
    (B, H, W, 1), both float32 in [0, 1].

    One ``train_step`` updates D, then G, each through its own tape and its own explicit
    variable list:

    * I~ = G(I, S), S_edited = E(I~)
    * D minimises BCE(D(I), 1) + BCE(D(I~), 0)                            (eq. 5)
    * G minimises 5 L_rec + 5 L_content + 1 L_color + 9 L_cycle + 5 L_adv (eq. 6), with
      L_cycle comparing phi(I) to phi(G(I~, E(I))) (eq. 4) and L_adv = BCE(D(I~), 1)
      under the D just updated.

    A loss weight of 0 skips that term entirely: no cycle pass without ``cycle``, no D and
    no D update without ``adv`` (this is how the paper's ablations run). E and phi never
    change. Every term, G's total and D's loss are metrics, in ``fit`` and ``evaluate``.

    ``compile(adv_warmup_steps=N)`` ramps G's adversarial weight linearly from 0 to its
    full value over G's first N steps (D trains from the first step), the usual way of
    starting a GAN from a generator that already does its task (SRGAN and ESRGAN pretrain
    theirs without the adversarial term). The paper has no warm-up (N = 0, the default). In
    the demo's short CPU runs a 300-step warm-up did not help (see ``docs/training.md``).

    Args:
        generator: a :class:`SaGIMGenerator` (default: its default configuration).
        discriminator: a :class:`PatchDiscriminator` (default: its default configuration).
        estimator: the saliency estimator E, a Keras model (B, H, W, 3) -> (B, H, W, 1) in
            [0, 1] (default: the weight-free ``itti-koch`` estimator).
        content_features: a :class:`ContentFeatures` (default: VGG19, the first five
            convolutions, random weights with seed 0 -- no download needed).
        color_kernel_size: size of the colour loss's Gaussian filter (21 in the paper).
        validate_inputs: check in the graph that inputs are finite and in [0, 1]
            (turn off for the last few percent of speed once the data are trusted).

    Example:
        >>> model = SaGIM(generator=SaGIMGenerator(base_filters=16))
        >>> model.compile()                       # Adam 1e-3, weights 5:5:1:9:5
        >>> model.fit(dataset_of_image_guidance_pairs, epochs=1)

    Reference:
        Yen-Chung Chen, Keng-Jui Chang, Yi-Hsuan Tsai, Yu-Chiang Frank Wang and Wei-Chen Chiu,
        "Guide Your Eyes: Learning Image Manipulation under Saliency Guidance", BMVC 2019.
    """

    def __init__(
        self,
        generator=None,
        discriminator=None,
        estimator=None,
        content_features=None,
        color_kernel_size=21,
        validate_inputs=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.generator = generator if generator is not None else SaGIMGenerator()
        self.discriminator = discriminator if discriminator is not None else PatchDiscriminator()
        self.estimator = estimator if estimator is not None else _default_estimator()
        self.content_features = (
            content_features if content_features is not None else ContentFeatures()
        )
        if getattr(self.estimator, "differentiable", True) is False:
            raise ConfigError(
                f"estimator {self.estimator.name!r} is not differentiable; SaGIM needs "
                "gradients through E (use it as an evaluation judge instead)"
            )
        self.estimator.trainable = False
        self.content_features.trainable = False
        self.color_kernel_size = int(color_kernel_size)
        self.validate_inputs = bool(validate_inputs)
        # float32 whatever the global policy: the colour loss is computed in float32.
        self.color_blur = GaussianBlur(self.color_kernel_size, name="color_blur", dtype="float32")
        self.loss_weights = dict(PAPER_LOSS_WEIGHTS)
        self.adv_warmup_steps = 0
        self.trackers = {name: keras.metrics.Mean(name=name) for name in METRIC_NAMES}
        self.g_optimizer = None
        self.d_optimizer = None
        self.build()

    # ------------------------------------------------------------------ building
    def build(self, input_shape=None):
        image_spec = (None, None, None, 3)
        self.generator.build([image_spec, (None, None, None, 1)])
        self.discriminator.build(image_spec)
        if not self.estimator.built:
            self.estimator(np.zeros((1, 32, 32, 3), np.float32))
        if not self.content_features.built:
            self.content_features.build(image_spec)
        if not self.color_blur.built:
            # Weight-free, but an unbuilt layer makes fit under a tf.distribute strategy
            # "symbolically build" the model by calling it with the image alone.
            self.color_blur.build(image_spec)
        self.built = True

    @property
    def metrics(self):
        return list(self.trackers.values())

    # ------------------------------------------------------------------ compile
    def compile(self, g_optimizer=None, d_optimizer=None, loss_weights=None, adv_warmup_steps=0,
                **kwargs):
        """Set the two optimizers and the loss weights.

        Args:
            g_optimizer, d_optimizer: Keras optimizers, names or configs (default: Adam
                with learning rate 1e-3, as in the paper). Under a ``mixed_float16``
                policy each is wrapped in a ``LossScaleOptimizer``.
            loss_weights: dict over ``rec, content, color, cycle, adv``; missing terms get
                the paper's 5:5:1:9:5, and 0 removes a term.
            adv_warmup_steps: G steps over which the adversarial weight ramps linearly up
                from 0 (0: the full weight from the start, as in the paper).
            **kwargs: passed to ``keras.Model.compile`` (``jit_compile``,
                ``steps_per_execution``, ``run_eagerly``); ``optimizer`` and ``loss`` are
                not used.
        """
        for unused in ("optimizer", "loss", "metrics"):
            if kwargs.get(unused) is not None:
                raise ConfigError(
                    f"SaGIM.compile: {unused!r} is not used; pass g_optimizer, d_optimizer "
                    "and loss_weights"
                )
            kwargs.pop(unused, None)
        self.loss_weights = normalize_loss_weights(loss_weights)
        if isinstance(adv_warmup_steps, bool) or not isinstance(adv_warmup_steps, int) or adv_warmup_steps < 0:
            raise ConfigError(f"adv_warmup_steps must be an integer >= 0, got {adv_warmup_steps!r}")
        self.adv_warmup_steps = int(adv_warmup_steps)
        self.g_optimizer = self._prepare_optimizer(g_optimizer, "g_optimizer")
        self.d_optimizer = self._prepare_optimizer(d_optimizer, "d_optimizer")
        super().compile(optimizer=None, **kwargs)
        if kwargs.get("jit_compile") is True and getattr(self.estimator, "antialias", False):
            # XLA cannot compile TensorFlow's antialiased resize; see IttiKochSaliency.
            self.estimator.antialias = False
        self.build_optimizers()

    @staticmethod
    def _prepare_optimizer(optimizer, name):
        if optimizer is None:
            optimizer = keras.optimizers.Adam(learning_rate=1e-3, name=name)
        else:
            optimizer = keras.optimizers.get(optimizer)
        policy = keras.mixed_precision.global_policy()
        if policy.name == "mixed_float16" and not isinstance(
            optimizer, keras.optimizers.LossScaleOptimizer
        ):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer, name=f"{name}_loss_scale")
        return optimizer

    def build_optimizers(self):
        """Create both optimizers' slots now, so a checkpoint can restore into them."""
        if not self.built:
            self.build()
        if self.g_optimizer is not None and not self.g_optimizer.built:
            self.g_optimizer.build(self.generator.trainable_variables)
        if self.d_optimizer is not None and not self.d_optimizer.built:
            self.d_optimizer.build(self.discriminator.trainable_variables)

    def get_compile_config(self):
        if self.g_optimizer is None:
            return None
        return {
            "g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer),
            "d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer),
            "loss_weights": dict(self.loss_weights),
            "adv_warmup_steps": self.adv_warmup_steps,
        }

    def compile_from_config(self, config):
        if not config:
            return
        self.compile(
            g_optimizer=keras.saving.deserialize_keras_object(config["g_optimizer"]),
            d_optimizer=keras.saving.deserialize_keras_object(config["d_optimizer"]),
            loss_weights=config["loss_weights"],
            adv_warmup_steps=config.get("adv_warmup_steps", 0),
        )

    # ------------------------------------------------------------------ inputs
    @staticmethod
    def _unpack(data):
        # Keras packs (x, y, sample_weight); x alone arrives as a 1-tuple or with Nones.
        while isinstance(data, (list, tuple)) and len(data) in (1, 2, 3) and (
            len(data) == 1 or all(d is None for d in data[1:])
        ):
            data = data[0]
        if isinstance(data, dict):
            missing = [k for k in ("image", "guidance") if k not in data]
            if missing:
                raise InputError(f"SaGIM: batch dict lacks {missing}; got keys {sorted(data)}")
            return data["image"], data["guidance"]
        if isinstance(data, (list, tuple)) and len(data) == 2:
            return data[0], data[1]
        raise InputError(
            "SaGIM: expected batches of (image, guidance) or dicts with 'image' and "
            f"'guidance', got {type(data).__name__}"
        )

    def _checked(self, image, guidance):
        image = tf.convert_to_tensor(image, dtype=tf.float32)
        guidance = tf.convert_to_tensor(guidance, dtype=tf.float32)
        check_static_pair(image.shape, guidance.shape)
        if self.validate_inputs:
            checks = []
            for tensor, name in ((image, "image"), (guidance, "guidance")):
                checks.append(tf.debugging.assert_all_finite(tensor, f"{name} contains NaN or Inf"))
                checks.append(tf.debugging.assert_greater_equal(
                    tensor, 0.0, message=f"{name} values must lie in [0, 1]"))
                checks.append(tf.debugging.assert_less_equal(
                    tensor, 1.0, message=f"{name} values must lie in [0, 1]"))
            checks.append(tf.debugging.assert_equal(
                tf.shape(image)[:3], tf.shape(guidance)[:3],
                message="guidance must have the image's batch, height and width"))
            with tf.control_dependencies(checks):
                image = tf.identity(image)
                guidance = tf.identity(guidance)
        return image, guidance

    # ------------------------------------------------------------------ forward
    def call(self, inputs, training=False):
        image, guidance = self._unpack(inputs)
        if tf.executing_eagerly() and not keras.backend.is_keras_tensor(image):
            image_np = check_image(np.asarray(image))
            guidance = check_map(np.asarray(guidance), "guidance", like=image_np)
            image = image_np
        return self.generator([image, guidance], training=training)

    def edit(self, image, guidance, batch_size=8):
        """Edit NumPy images: (H, W, 3) or (B, H, W, 3) in [0, 1] (uint8 is scaled).

        Checks the inputs on the host and returns a NumPy array of the input's shape.
        """
        image = check_image(image)
        guidance = check_map(guidance, "guidance", like=image)
        single = image.ndim == 3
        if single:
            image, guidance = image[None], guidance[None]
        out = [
            np.asarray(self.generator([image[i : i + batch_size], guidance[i : i + batch_size]]))
            for i in range(0, len(image), batch_size)
        ]
        out = np.concatenate(out, axis=0)
        return out[0] if single else out

    # ------------------------------------------------------------------ losses
    def _replicas(self):
        return float(tf.distribute.get_strategy().num_replicas_in_sync)

    def effective_loss_weights(self):
        """The loss weights at G's current step: ``adv`` scaled by the warm-up ramp."""
        w = dict(self.loss_weights)
        if w["adv"] > 0 and self.adv_warmup_steps > 0:
            step = tf.cast(self.g_optimizer.iterations, tf.float32)
            w["adv"] = w["adv"] * tf.minimum(1.0, (step + 1.0) / float(self.adv_warmup_steps))
        return w

    def _generator_terms(self, image, guidance, edited, fake_logits, phi_image):
        """G's five terms (skipping zero weights) and its weighted total."""
        w = self.loss_weights
        terms = {}
        if w["rec"] > 0:
            terms["rec"] = reconstruction_loss(guidance, self.estimator(edited, training=False))
        if w["content"] > 0:
            terms["content"] = content_loss(self.content_features(edited), phi_image)
        if w["color"] > 0:
            terms["color"] = color_loss(image, edited, guidance, blur=self.color_blur)
        if w["cycle"] > 0:
            original_saliency = tf.stop_gradient(self.estimator(image, training=False))
            cycled = self.generator([edited, original_saliency], training=True)
            terms["cycle"] = cycle_loss(phi_image, self.content_features(cycled))
        if w["adv"] > 0:
            terms["adv"] = generator_adversarial_loss(fake_logits)
        scale = self.effective_loss_weights()
        total = tf.add_n([scale[name] * value for name, value in terms.items()]) if terms else 0.0
        return terms, total

    def _update_trackers(self, terms, g_total, d_loss):
        """Update and report the computed terms only (a skipped term is not logged as 0)."""
        reported = [f"{name}_loss" for name in terms] + ["g_loss"]
        for name, value in terms.items():
            self.trackers[f"{name}_loss"].update_state(value)
        self.trackers["g_loss"].update_state(g_total)
        if d_loss is not None:
            self.trackers["d_loss"].update_state(d_loss)
            reported.append("d_loss")
        return {name: self.trackers[name].result() for name in reported}

    def train_step(self, data):
        if self.g_optimizer is None:
            raise ConfigError("SaGIM: call compile() before fit()")
        image, guidance = self._checked(*self._unpack(data))
        w = self.loss_weights
        replicas = self._replicas()
        need_phi = w["content"] > 0 or w["cycle"] > 0
        phi_image = (
            [tf.stop_gradient(f) for f in self.content_features(image)] if need_phi else None
        )
        g_vars = self.generator.trainable_variables
        d_vars = self.discriminator.trainable_variables

        with tf.GradientTape(watch_accessed_variables=False) as g_tape:
            g_tape.watch([v.value for v in g_vars])
            edited = self.generator([image, guidance], training=True)

            d_loss = None
            fake_logits = None
            if w["adv"] > 0:
                # D first, on the edit made above (no second forward pass of G).
                with tf.GradientTape(watch_accessed_variables=False) as d_tape:
                    d_tape.watch([v.value for v in d_vars])
                    real_logits = self.discriminator(image, training=True)
                    fake_for_d = self.discriminator(tf.stop_gradient(edited), training=True)
                    d_loss = discriminator_loss(real_logits, fake_for_d)
                    d_scaled = self.d_optimizer.scale_loss(d_loss / replicas)
                d_grads = d_tape.gradient(d_scaled, d_vars)
                with tf.control_dependencies([d_loss]):  # see the G update below
                    self.d_optimizer.apply(d_grads, d_vars)
                # Then G, against the D just updated.
                fake_logits = self.discriminator(edited, training=True)

            terms, g_total = self._generator_terms(image, guidance, edited, fake_logits, phi_image)
            g_scaled = self.g_optimizer.scale_loss(g_total / replicas)
        g_grads = g_tape.gradient(g_scaled, g_vars)
        # Keras increments an optimizer's step counter with no data dependence, so when a
        # dataset of unknown length ran out inside `fit`, the failed step was still counted
        # (one extra iteration per epoch, for D and G). Making the update wait for the loss
        # stops that: a step whose input never came changes nothing.
        with tf.control_dependencies([g_total]):
            self.g_optimizer.apply(g_grads, g_vars)
        return self._update_trackers(terms, g_total, d_loss)

    def test_step(self, data):
        image, guidance = self._checked(*self._unpack(data))
        w = self.loss_weights
        need_phi = w["content"] > 0 or w["cycle"] > 0
        phi_image = self.content_features(image) if need_phi else None
        edited = self.generator([image, guidance], training=False)
        d_loss = fake_logits = None
        if w["adv"] > 0:
            fake_logits = self.discriminator(edited, training=False)
            d_loss = discriminator_loss(self.discriminator(image, training=False), fake_logits)
        terms, g_total = self._generator_terms(image, guidance, edited, fake_logits, phi_image)
        return self._update_trackers(terms, g_total, d_loss)

    # ------------------------------------------------------------------ config
    def get_config(self):
        config = super().get_config()
        ser = keras.saving.serialize_keras_object
        config.update(
            {
                "generator": ser(self.generator),
                "discriminator": ser(self.discriminator),
                "estimator": ser(self.estimator),
                "content_features": ser(self.content_features),
                "color_kernel_size": self.color_kernel_size,
                "validate_inputs": self.validate_inputs,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("generator", "discriminator", "estimator", "content_features"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        config.pop("trainable", None)
        config.pop("dtype", None)
        return cls(**config)
