"""phi(.): frozen VGG feature maps for the content and cycle losses (paper eqs. 2 and 4)."""

from __future__ import annotations

import contextlib
import logging
import os

import keras
import numpy as np
from keras import ops

from sagim_tf.utils.errors import ConfigError, InputError

log = logging.getLogger(__name__)

# The first five convolutions of VGG19 (also valid names in VGG16). They stop at 1/4
# resolution, so the extractor costs a fraction of the full network, and shallow layers
# keep edges, colour and texture -- what "preserve the content" means for an edit that
# must stay pixel-aligned with its input. See README "Content features".
DEFAULT_LAYERS = (
    "block1_conv1",
    "block1_conv2",
    "block2_conv1",
    "block2_conv2",
    "block3_conv1",
)

_WEIGHT_FILES = {
    "vgg19": "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "vgg16": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
}
_WEIGHT_URL = "https://storage.googleapis.com/tensorflow/keras-applications/{arch}/{file}"
# ImageNet "caffe" preprocessing: BGR order, 0-255, minus the per-channel mean.
_BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def keras_cache_path(arch: str) -> str:
    """Where Keras looks for (and downloads) the ImageNet weights of ``arch``."""
    base = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(base, "models", _WEIGHT_FILES[arch])


@contextlib.contextmanager
def _global_dtype_policy(policy):
    """Make ``policy`` the global dtype policy inside the block, then restore the old one."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@keras.saving.register_keras_serializable(package="sagim_tf")
class ContentFeatures(keras.Model):
    """A frozen VGG that returns a list of feature maps for images in [0, 1].

    Args:
        arch: string. ``"vgg19"`` or ``"vgg16"``. Defaults to ``"vgg19"``.
        layers: sequence of strings. The names of the layers to return, in order (five
            in the paper). Defaults to ``DEFAULT_LAYERS``, the first five convolutions.
        weights: string, path or None. ``"imagenet"`` (loaded from the Keras cache,
            ``~/.keras/models``), a path to a local notop ``.h5`` file, or None for a
            seeded random initialisation (He-normal kernels, zero biases).
            Defaults to None.
        seed: int. The seed of the random initialisation when ``weights`` is None.
            Defaults to 0.
        feature_scale: float. Every feature map is multiplied by it. The default, 1/255,
            undoes the 0-255 input range of VGG's preprocessing, so that feature MSEs are
            on the scale of the other losses (pixel values in [0, 1]) and the paper's
            5:5:1:9:5 weights stay balanced. Defaults to ``1 / 255``.
        dtype: string or ``keras.mixed_precision.DTypePolicy`` (a keyword argument). The
            policy VGG is built under; None uses the global policy.

    The network is truncated after the deepest requested layer, frozen
    (``trainable=False``) and always called with ``training=False``. Inputs are converted
    to what the ImageNet weights expect (RGB [0, 1] -> BGR 0-255 minus the mean) whatever
    the weights, so a model trained with random features can switch to real ones.

    ``weights_source`` says which weights are in use, and building logs it.

    Example:
        >>> phi = ContentFeatures(weights=None, seed=0)
        >>> feats = phi(images)            # list of 5 tensors

    Reference:
        Simonyan & Zisserman, "Very Deep Convolutional Networks", ICLR 2015. With random
        weights: Liu et al., "Generic Perceptual Loss for Modeling Structured Output
        Dependencies", CVPR 2021.
    """

    def __init__(
        self,
        arch="vgg19",
        layers=DEFAULT_LAYERS,
        weights=None,
        seed=0,
        feature_scale=1.0 / 255.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        arch = str(arch).lower()
        if arch not in _WEIGHT_FILES:
            raise ConfigError(f"content features: arch must be 'vgg19' or 'vgg16', got {arch!r}")
        if not tuple(layers):
            raise ConfigError("content features: at least one layer is needed")

        # === Config ===
        # ``layers`` and ``weights`` are stored under other names: Keras models already
        # have attributes with those names.
        self.arch = arch
        self.layer_names = tuple(layers)
        self.weights_spec = weights
        self.seed = int(seed)
        self.feature_scale = float(feature_scale)

        # === Network ===
        # keras.applications builds under the global policy; build under this model's own.
        with _global_dtype_policy(self.dtype_policy):
            full, self.weights_source = self._build_vgg(arch, weights, self.seed)
            available = [layer.name for layer in full.layers]
            unknown = [name for name in self.layer_names if name not in available]
            if unknown:
                convs = [n for n in available if "conv" in n]
                raise ConfigError(
                    f"content features: unknown {arch} layer(s) {unknown}; choose from {convs}"
                )
            outputs = [full.get_layer(name).output for name in self.layer_names]
            self.extractor = keras.Model(full.input, outputs, name=f"{arch}_features")
        self.extractor.trainable = False
        self.trainable = False
        log.info(
            "content features: %s layers %s, weights: %s",
            arch,
            list(self.layer_names),
            self.weights_source,
        )

    @staticmethod
    def _build_vgg(arch, weights, seed):
        app = keras.applications.VGG19 if arch == "vgg19" else keras.applications.VGG16
        if weights is None:
            model = app(include_top=False, weights=None, input_shape=(None, None, 3))
            rng = np.random.default_rng(seed)
            for layer in model.layers:
                if isinstance(layer, keras.layers.Conv2D):
                    kernel, bias = layer.get_weights()
                    fan_in = np.prod(kernel.shape[:-1])
                    kernel = rng.normal(0.0, np.sqrt(2.0 / fan_in), kernel.shape)
                    layer.set_weights([kernel.astype(np.float32), np.zeros_like(bias)])
            return model, f"random (He-normal, seed {seed})"
        if weights == "imagenet":
            cache = keras_cache_path(arch)
            try:
                model = app(include_top=False, weights="imagenet", input_shape=(None, None, 3))
            except Exception as exc:
                url = _WEIGHT_URL.format(arch=arch, file=_WEIGHT_FILES[arch])
                raise InputError(
                    f"content features: could not load {arch} ImageNet weights ({exc}). "
                    f"Without a network, download {url} elsewhere and put it at {cache}, "
                    "or pass weights=PATH to a local .h5 file, or weights=None for "
                    "random features."
                ) from exc
            return model, f"imagenet ({cache})"
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise InputError(f"content features: weights file {path!r} does not exist")
        model = app(include_top=False, weights=None, input_shape=(None, None, 3))
        try:
            model.load_weights(path)
        except Exception as exc:
            raise InputError(
                f"content features: {path!r} is not a {arch} notop weights file ({exc})"
            ) from exc
        return model, f"file {os.path.abspath(path)}"

    def preprocess(self, images):
        x = ops.cast(images, self.compute_dtype) * 255.0
        x = ops.flip(x, axis=-1)
        return x - ops.cast(ops.convert_to_tensor(_BGR_MEAN), self.compute_dtype)

    def call(self, images):
        outputs = self.extractor(self.preprocess(images), training=False)
        outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        return [f * self.feature_scale for f in outputs]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "arch": self.arch,
                "layers": list(self.layer_names),
                "weights": self.weights_spec,
                "seed": self.seed,
                "feature_scale": self.feature_scale,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
