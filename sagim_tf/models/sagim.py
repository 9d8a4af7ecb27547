"""SaGIM: G, D, a frozen saliency estimator E and frozen VGG features, trained by ``fit``.

This module holds the model and its GAN step, the TensorFlow-specific part of the package
(gradient tapes, the distribution-aware loss scaling); the networks and losses it uses are
backend-agnostic. Its helpers live beside it: :mod:`.batches` (unpacking and checking
inputs), :mod:`.compile_options` (loss weights, optimizers, precision, XLA) and
:mod:`.generate` (G's one compiled inference step).
"""

from __future__ import annotations

import logging

import keras
import numpy as np
import tensorflow as tf

from sagim_tf.estimators import build_estimator
from sagim_tf.layers.gaussian_blur import GaussianBlur
from sagim_tf.losses import (
    ALL_LOSS_NAMES,
    DEFAULT_LOSS_WEIGHTS,
    color_loss,
    content_loss,
    cycle_loss,
    discriminator_loss,
    generator_adversarial_loss,
    locality_loss,
    photorealism_loss,
    reconstruction_loss,
    settings_loss,
)
from sagim_tf.models.batches import check_batch, check_eager_pair, unpack_batch
from sagim_tf.models.compile_options import (
    check_adv_warmup_steps,
    check_compile_kwargs,
    check_estimator_for_xla,
    estimator_supports_xla,
    normalize_loss_weights,
    prepare_optimizer,
)
from sagim_tf.models.content_features import ContentFeatures
from sagim_tf.models.discriminator import PatchDiscriminator
from sagim_tf.models.generate import generate, has_operator_head
from sagim_tf.models.generator import SaGIMGenerator
from sagim_tf.utils.errors import ConfigError

logger = logging.getLogger(__name__)


def _photo_radius(image) -> int:
    """The photorealism term's window radius: 2% of the batch's shorter side (4 at 256x192)."""
    height, width = image.shape[1], image.shape[2]
    if height is None or width is None:
        return 4
    return max(1, round(0.02 * min(height, width)))


METRIC_NAMES = tuple(f"{name}_loss" for name in ALL_LOSS_NAMES) + ("g_loss", "d_loss")


@keras.saving.register_keras_serializable(package="sagim_tf")
class SaGIM(keras.Model):
    """Saliency-guided image manipulation (Chen et al., BMVC 2019), trained with ``fit``.

    Holds the manipulation network G, the PatchGAN discriminator D, a frozen
    differentiable saliency estimator E and frozen VGG content features phi.
    ``model((image, guidance))`` returns G's edit. ``fit`` takes batches of
    ``(image, guidance)`` (or dicts with those keys): images (B, H, W, 3) and guiding maps
    (B, H, W, 1), both float32 in [0, 1].

    One ``train_step`` runs G once and then reads as ``_train_discriminator`` followed by
    ``_train_generator``, each with its own tape and its own explicit variable list:

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
        generator: :class:`SaGIMGenerator`. G. Defaults to its default configuration.
        discriminator: :class:`PatchDiscriminator`. D. Defaults to its default
            configuration.
        estimator: keras.Model. The saliency estimator E, (B, H, W, 3) -> (B, H, W, 1) in
            [0, 1]. Defaults to the weight-free ``itti-koch`` estimator.
        content_features: :class:`ContentFeatures`. phi. Defaults to VGG19's first five
            convolutions with random weights, seed 0 (no download needed).
        color_kernel_size: int. Size of the colour loss's Gaussian filter. Defaults to 21,
            the paper's.
        validate_inputs: bool. Check in the graph that inputs are finite and in [0, 1]
            (turn off for the last few percent of speed once the data are trusted).
            Defaults to ``True``.

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
        self.estimator = estimator if estimator is not None else build_estimator("itti-koch")
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
        self.loss_weights = dict(DEFAULT_LOSS_WEIGHTS)
        self.adv_warmup_steps = 0
        self.trackers = {name: keras.metrics.Mean(name=name) for name in METRIC_NAMES}
        self.g_optimizer = None
        self.d_optimizer = None
        self._with_fields = None
        if has_operator_head(self.generator):
            # G's layers and weights with the "fields" layer as a second output (for
            # L_settings), kept out of Keras' tracking (a lambda), so it adds nothing to
            # what is saved: G is saved once, as itself.
            both = keras.Model(
                self.generator.inputs,
                [self.generator.outputs[0], self.generator.get_layer("fields").output],
                name=f"{self.generator.name}_with_fields",
            )
            self._with_fields = lambda inputs, training: both(inputs, training=training)
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
    def compile(
        self, g_optimizer=None, d_optimizer=None, loss_weights=None, adv_warmup_steps=0, **kwargs
    ):
        """Set the two optimizers and the loss weights.

        Args:
            g_optimizer: a Keras optimizer, name or config for G. Under a
                ``mixed_float16`` policy it is wrapped in a ``LossScaleOptimizer``.
                Defaults to Adam with learning rate 1e-3, as in the paper.
            d_optimizer: the same for D. Defaults to Adam with learning rate 1e-3.
            loss_weights: dict over ``rec, content, color, cycle, adv``; missing terms get
                the paper's 5:5:1:9:5, and 0 removes a term. Defaults to the paper's.
            adv_warmup_steps: int. G steps over which the adversarial weight ramps
                linearly up from 0. Defaults to 0 (the full weight from the start, as in
                the paper).
            **kwargs: passed to ``keras.Model.compile`` (``jit_compile``,
                ``steps_per_execution``, ``run_eagerly``); ``optimizer``, ``loss`` and
                ``metrics`` are not used. ``jit_compile=True`` needs an estimator built
                for XLA (``build_estimator(spec, jit_compile=True)``), else a
                :class:`ConfigError` says so; ``"auto"`` (Keras' default) leaves XLA off
                for such an estimator.
        """
        kwargs = check_compile_kwargs(kwargs)
        jit_compile = kwargs.get("jit_compile", "auto")
        if jit_compile is True:
            check_estimator_for_xla(self.estimator)
        elif jit_compile == "auto" and not estimator_supports_xla(self.estimator):
            logger.info("XLA off: the estimator %r resizes with antialiasing", self.estimator.name)
            kwargs["jit_compile"] = False
        self.loss_weights = normalize_loss_weights(loss_weights)
        if self.loss_weights["settings"] > 0 and not has_operator_head(self.generator):
            raise ConfigError(
                "losses.settings is a prior on the operator head's settings; this G has the "
                f"{getattr(self.generator, 'head', 'residual')} head (set the weight to 0, or "
                "generator.head: operators)"
            )
        self.adv_warmup_steps = check_adv_warmup_steps(adv_warmup_steps)
        self.g_optimizer = prepare_optimizer(g_optimizer, "g_optimizer")
        self.d_optimizer = prepare_optimizer(d_optimizer, "d_optimizer")
        super().compile(optimizer=None, **kwargs)
        self.build_optimizers()

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

    # ------------------------------------------------------------------ forward
    def _forward(self, image, guidance, training):
        """G's edit and, when L_settings is on, its raw fields, from one forward pass."""
        if self.loss_weights["settings"] <= 0:
            return self.generator([image, guidance], training=training), None
        return self._with_fields([image, guidance], training=training)

    def call(self, inputs, training=False):
        """G's edit of ``(image, guidance)`` (or a dict with those keys); nothing else."""
        image, guidance = check_eager_pair(*unpack_batch(inputs))
        return self.generator([image, guidance], training=training)

    def edit(self, image, guidance, batch_size=8):
        """Edit NumPy images through G's compiled generate step.

        Args:
            image: (H, W, 3) or (B, H, W, 3) in [0, 1] (uint8 is scaled).
            guidance: guiding map(s) of the image's size, in [0, 1].
            batch_size: int. Images per call of G. Defaults to 8.

        Returns:
            A float32 NumPy array in [0, 1] of the input's shape.
        """
        return generate(self.generator, image, guidance, batch_size=batch_size)

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

    def _content_targets(self, image):
        """phi(I), a constant for G's losses, or None when no term uses it."""
        w = self.loss_weights
        if w["content"] > 0 or w["cycle"] > 0:
            return [tf.stop_gradient(f) for f in self.content_features(image)]
        return None

    def _generator_terms(self, image, guidance, edited, fake_logits, phi_image, fields=None):
        """G's five terms and the extras (skipping zero weights) and its weighted total;
        ``fields``: G's raw operator fields, needed by L_settings only."""
        w = self.loss_weights
        terms = {}
        if w["rec"] > 0:
            terms["rec"] = reconstruction_loss(guidance, self.estimator(edited, training=False))
        if w["content"] > 0:
            terms["content"] = content_loss(self.content_features(edited), phi_image)
        if w["color"] > 0:
            terms["color"] = color_loss(image, edited, guidance, blur=self.color_blur)
        if w["cycle"] > 0 or w["locality"] > 0:
            # E(I): the cycle pass's guidance and L_local's reference, a constant
            original_saliency = tf.stop_gradient(self.estimator(image, training=False))
        if w["cycle"] > 0:
            cycled = self.generator([edited, original_saliency], training=True)
            terms["cycle"] = cycle_loss(phi_image, self.content_features(cycled))
        if w["adv"] > 0:
            terms["adv"] = generator_adversarial_loss(fake_logits)
        if w["photorealism"] > 0:
            terms["photorealism"] = photorealism_loss(image, edited, radius=_photo_radius(image))
        if w["locality"] > 0:
            terms["locality"] = locality_loss(image, edited, guidance, original_saliency)
        if w["settings"] > 0:
            terms["settings"] = settings_loss(fields)
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

    # ------------------------------------------------------------------ the GAN step
    def train_step(self, data):
        if self.g_optimizer is None:
            raise ConfigError("SaGIM: call compile() before fit()")
        # 1. The batch, checked; phi(I) once, a constant for G's losses.
        image, guidance = check_batch(*unpack_batch(data), validate=self.validate_inputs)
        phi_image = self._content_targets(image)

        # 2. G's one forward pass of the step, recorded on G's tape.
        g_tape = tf.GradientTape(watch_accessed_variables=False)
        with g_tape:
            g_tape.watch([v.value for v in self.generator.trainable_variables])
            edited, fields = self._forward(image, guidance, training=True)

        # 3. D's step on the stopped-gradient edit, on its own tape; G's is not recording.
        d_loss = self._train_discriminator(image, tf.stop_gradient(edited))

        # 4. G's step: its losses against the D just updated, recorded on G's tape again.
        terms, g_total = self._train_generator(g_tape, image, guidance, edited, phi_image, fields)
        return self._update_trackers(terms, g_total, d_loss)

    def _train_discriminator(self, image, fake):
        """One update of D on real ``image`` and a (stopped-gradient) ``fake``; D's loss.

        Nothing happens (None is returned) when the adversarial weight is 0.
        """
        if self.loss_weights["adv"] <= 0:
            return None
        d_vars = self.discriminator.trainable_variables
        with tf.GradientTape(watch_accessed_variables=False) as d_tape:
            d_tape.watch([v.value for v in d_vars])
            # 3a. D's loss: real images toward 1, G's edits toward 0 (eq. 5).
            d_loss = discriminator_loss(
                self.discriminator(image, training=True),
                self.discriminator(fake, training=True),
            )
            d_scaled = self.d_optimizer.scale_loss(d_loss / self._replicas())
        # 3b. D's update, after its loss (see step 4b).
        d_grads = d_tape.gradient(d_scaled, d_vars)
        with tf.control_dependencies([d_loss]):
            self.d_optimizer.apply(d_grads, d_vars)
        return d_loss

    def _train_generator(self, g_tape, image, guidance, edited, phi_image, fields=None):
        """G's losses and update; ``g_tape`` recorded G's forward pass that made ``edited``.

        Returns:
            ``(terms, g_total)``: G's loss terms and their weighted total (eq. 6).
        """
        g_vars = self.generator.trainable_variables
        # Reopening the tape resumes its recording: G's pass above and the losses below
        # make one gradient, without a second forward pass of G.
        with g_tape:
            # 4a. G's loss: five terms, L_adv under the D updated in step 3.
            fake_logits = None
            if self.loss_weights["adv"] > 0:
                fake_logits = self.discriminator(edited, training=True)
            terms, g_total = self._generator_terms(
                image, guidance, edited, fake_logits, phi_image, fields
            )
            g_scaled = self.g_optimizer.scale_loss(g_total / self._replicas())
        # 4b. G's update. Keras increments an optimizer's step counter with no data
        # dependence, so when a dataset of unknown length ran out inside `fit`, the failed
        # step was still counted (one extra iteration per epoch, for D and G). Making the
        # update wait for the loss stops that: a step whose input never came changes nothing.
        g_grads = g_tape.gradient(g_scaled, g_vars)
        with tf.control_dependencies([g_total]):
            self.g_optimizer.apply(g_grads, g_vars)
        return terms, g_total

    def test_step(self, data):
        image, guidance = check_batch(*unpack_batch(data), validate=self.validate_inputs)
        w = self.loss_weights
        need_phi = w["content"] > 0 or w["cycle"] > 0
        phi_image = self.content_features(image) if need_phi else None
        edited, fields = self._forward(image, guidance, training=False)
        d_loss = fake_logits = None
        if w["adv"] > 0:
            fake_logits = self.discriminator(edited, training=False)
            d_loss = discriminator_loss(self.discriminator(image, training=False), fake_logits)
        terms, g_total = self._generator_terms(
            image, guidance, edited, fake_logits, phi_image, fields
        )
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
