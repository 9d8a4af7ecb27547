"""SalGAN's generator in Keras, the loader for its authors' weights, and the converter.

SalGAN (Pan et al., 2017) is the saliency estimator E of the SaGIM paper (§3.1). Its
authors publish the generator's weights only as a Lasagne ``np.savez`` file,
``gen_modelWeights0090.npz`` (54 arrays, 127 MB). This module rebuilds the network as the
authors' code defines it (docs/method.md §3):

* input 256 wide x 192 high; RGB in [0, 1] -> 0-255 -> BGR, minus the VGG mean
  [103.939, 116.779, 123.68];
* encoder: VGG16 conv1_1 ... conv5_3 (3x3, pad 1, ReLU), 2x2 max-pool after blocks 1-4,
  no pool5;
* decoder: uconv5_3 ... uconv1_1 (3x3, pad 1, ReLU) with 2x nearest upsampling before
  blocks 4, 3, 2 and 1, then a 1x1 convolution to one channel and a sigmoid.

Lasagne stores kernels as (out, in, kh, kw). Its encoder layers cross-correlate, as Keras
does, so their kernels only need ``transpose(2, 3, 1, 0)``; its decoder layers were built
with ``flip_filters=True`` (true convolution), so their kernels are flipped spatially
first. Files are read with ``np.load(..., allow_pickle=False)``: a weights file is never
unpickled.
"""

from __future__ import annotations

import os
import zipfile

import keras
import numpy as np
from keras import layers, ops

from sagim_tf.estimators.base import ResizingEstimator
from sagim_tf.estimators.registry import register_estimator
from sagim_tf.utils.errors import InputError
from sagim_tf.utils.io import atomic_write

SALGAN_NATIVE_SIZE = (256, 192)  # (width, height)
BGR_MEAN = (103.939, 116.779, 123.68)

# One row per stage, as in the authors' Lasagne code.
# fmt: off
ENCODER = (
    ("conv1_1", 64), ("conv1_2", 64), "pool",
    ("conv2_1", 128), ("conv2_2", 128), "pool",
    ("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256), "pool",
    ("conv4_1", 512), ("conv4_2", 512), ("conv4_3", 512), "pool",
    ("conv5_1", 512), ("conv5_2", 512), ("conv5_3", 512),
)
DECODER = (
    ("uconv5_3", 512), ("uconv5_2", 512), ("uconv5_1", 512), "up",
    ("uconv4_3", 512), ("uconv4_2", 512), ("uconv4_1", 512), "up",
    ("uconv3_3", 256), ("uconv3_2", 256), ("uconv3_1", 256), "up",
    ("uconv2_2", 128), ("uconv2_1", 128), "up",
    ("uconv1_2", 64), ("uconv1_1", 64),
)
# fmt: on
N_ARRAYS = 54


def _conv_layers():
    """[(name, in_channels, out_channels, is_decoder)] in the order of the npz file."""
    out, cin = [], 3
    for part, is_decoder in ((ENCODER, False), (DECODER, True)):
        for item in part:
            if isinstance(item, tuple):
                name, cout = item
                out.append((name, cin, cout, is_decoder))
                cin = cout
    return out


def expected_shapes() -> list[tuple[int, ...]]:
    """The shape of each of arr_0 ... arr_53 in ``gen_modelWeights0090.npz``."""
    shapes = []
    for _, cin, cout, _ in _conv_layers():
        shapes += [(cout, cin, 3, 3), (cout,)]
    shapes += [(1, 64, 1, 1), (1,)]
    return shapes


@keras.saving.register_keras_serializable(package="sagim_tf")
class BGRMeanPreprocess(layers.Layer):
    """RGB in [0, 1] -> BGR in 0-255 minus the VGG/Caffe mean, as SalGAN's input expects.

    Args:
        mean: the per-channel mean in B, G, R order.
        **kwargs: passed to ``keras.layers.Layer``.

    Example:
        >>> layer = BGRMeanPreprocess()
        >>> y = layer(np.ones((1, 4, 4, 3), "float32"))  # 255 - mean, in BGR order

    Reference:
        K. Simonyan and A. Zisserman, "Very Deep Convolutional Networks for Large-Scale
        Image Recognition", ICLR 2015 (the Caffe VGG preprocessing).
    """

    def __init__(self, mean=BGR_MEAN, **kwargs):
        super().__init__(**kwargs)
        self.mean = tuple(float(m) for m in mean)

    def call(self, x):
        x = ops.flip(x * 255.0, axis=-1)
        return x - ops.convert_to_tensor(np.asarray(self.mean, np.float32), dtype=x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"mean": list(self.mean)})
        return config


def build_salgan_network(input_size=SALGAN_NATIVE_SIZE) -> keras.Model:
    """SalGAN's generator as a functional model at a fixed ``input_size`` (width, height).

    The weights are randomly initialised; use :func:`load_salgan` for the authors' weights.

    Args:
        input_size: (width, height); the authors' is (256, 192). Sizes that are not
            multiples of 16 work but the output is then smaller than the input (Lasagne's
            pooling floors), which :class:`ResizingEstimator` resizes away.

    Example:
        >>> net = build_salgan_network((64, 48))
        >>> tuple(net.output_shape)
        (None, 48, 64, 1)

    Reference:
        J. Pan et al., "SalGAN: Visual Saliency Prediction with Generative Adversarial
        Networks", CVPR Workshops 2017; https://github.com/imatge-upc/saliency-salgan-2017.
    """
    width, height = (int(v) for v in input_size)
    inputs = keras.Input((height, width, 3), name="image")
    x = BGRMeanPreprocess(name="bgr_mean")(inputs)
    for part in (ENCODER, DECODER):
        for item in part:
            if item == "pool":
                x = layers.MaxPooling2D(2)(x)
            elif item == "up":
                x = layers.UpSampling2D(2, interpolation="nearest")(x)
            else:
                name, cout = item
                x = layers.Conv2D(cout, 3, padding="same", activation="relu", name=name)(x)
    outputs = layers.Conv2D(1, 1, activation="sigmoid", name="output")(x)
    return keras.Model(inputs, outputs, name="salgan_generator")


def read_salgan_npz(path) -> list[np.ndarray]:
    """Read and check the authors' npz: 54 float arrays of the exact shapes, no pickles.

    Raises:
        InputError: the file is missing, truncated or not an npz, holds pickled objects,
            has the wrong number of arrays, or any array has the wrong shape or dtype.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"salgan: no such weights file {path!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise InputError(
                    f"salgan: {path!r} is a single .npy array, expected the npz of 54 arrays"
                )
            names = list(data.files)
            expected_names = [f"arr_{i}" for i in range(N_ARRAYS)]
            if len(names) != N_ARRAYS:
                raise InputError(
                    f"salgan: {path!r} holds {len(names)} arrays, expected {N_ARRAYS} "
                    "(arr_0 ... arr_53 of gen_modelWeights0090.npz)"
                )
            if sorted(names) != sorted(expected_names):
                raise InputError(
                    f"salgan: {path!r} has arrays {sorted(names)[:4]}..., expected arr_0 ... arr_53"
                )
            arrays = [data[n] for n in expected_names]
    except InputError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InputError(
                f"salgan: {path!r} contains pickled Python objects; refusing to load it "
                "(weights are read with allow_pickle=False)"
            ) from exc
        raise InputError(f"salgan: {path!r} is not a valid npz file ({exc})") from exc
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise InputError(f"salgan: {path!r} is truncated or not an npz file ({exc})") from exc
    for i, (arr, shape) in enumerate(zip(arrays, expected_shapes())):
        if arr.dtype.kind != "f":
            raise InputError(f"salgan: arr_{i} in {path!r} has dtype {arr.dtype}, expected floats")
        if tuple(arr.shape) != shape:
            raise InputError(
                f"salgan: arr_{i} in {path!r} has shape {tuple(arr.shape)}, expected {shape}"
            )
        if not np.isfinite(arr).all():
            raise InputError(f"salgan: arr_{i} in {path!r} contains NaN or infinite values")
    return [a.astype(np.float32) for a in arrays]


def keras_weights_from_npz(arrays) -> dict[str, list[np.ndarray]]:
    """Layer name -> [kernel (kh, kw, in, out), bias] converted from the Lasagne arrays."""
    out = {}
    specs = _conv_layers() + [("output", 64, 1, False)]
    for i, (name, _, _, is_decoder) in enumerate(specs):
        w, b = arrays[2 * i], arrays[2 * i + 1]
        if is_decoder:
            w = w[:, :, ::-1, ::-1]  # Lasagne flip_filters=True: true convolution
        out[name] = [np.ascontiguousarray(w.transpose(2, 3, 1, 0)), b]
    return out


def _assign(network: keras.Model, weights: dict[str, list[np.ndarray]]) -> None:
    for name, values in weights.items():
        network.get_layer(name).set_weights(values)


def _wrap(network, input_size):
    estimator = ResizingEstimator(network, native_size=tuple(input_size), name="salgan")
    estimator.build((None, None, None, 3))
    return estimator


def load_salgan(path, input_size=SALGAN_NATIVE_SIZE):
    """SalGAN with the authors' weights, as a frozen estimator of the package's interface.

    Args:
        path: ``gen_modelWeights0090.npz`` from the authors, or a ``.weights.h5`` file
            written by :func:`convert_salgan` (``scripts/convert_salgan.py``).
        input_size: native (width, height); keep the authors' (256, 192) for real use.

    Returns:
        A :class:`~sagim_tf.estimators.base.ResizingEstimator` mapping (B, H, W, 3) in
        [0, 1] to (B, H, W, 1) in [0, 1].

    Raises:
        InputError: the file is missing, of an unknown kind, or does not match the layout.

    Example:
        >>> estimator = load_salgan("gen_modelWeights0090.npz")  # doctest: +SKIP
        >>> maps = estimator(images)  # doctest: +SKIP
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"salgan: no such weights file {path!r}")
    network = build_salgan_network(input_size)
    if path.endswith(".npz"):
        _assign(network, keras_weights_from_npz(read_salgan_npz(path)))
    elif path.endswith(".weights.h5"):
        try:
            network.load_weights(path)
        except Exception as exc:  # h5py/keras raise many kinds
            raise InputError(f"salgan: cannot load Keras weights from {path!r} ({exc})") from exc
    else:
        raise InputError(
            f"salgan: {path!r}: expected the authors' .npz or a converted .weights.h5 file"
        )
    return _wrap(network, input_size)


def convert_salgan(npz_path, out_path) -> str:
    """Convert the authors' npz to Keras: ``OUT.weights.h5`` (weights) or ``OUT.keras``.

    A ``.weights.h5`` file loads with ``load_salgan`` / the ``salgan:PATH`` spec; a
    ``.keras`` file holds the whole estimator and loads with ``keras:PATH`` (or
    ``keras.saving.load_model``). Neither needs the npz afterwards.
    """
    out_path = os.fspath(out_path)
    if not (out_path.endswith(".weights.h5") or out_path.endswith(".keras")):
        raise InputError(f"convert_salgan: output {out_path!r} must end in .weights.h5 or .keras")
    estimator = load_salgan(npz_path)
    if out_path.endswith(".keras"):
        atomic_write(out_path, lambda tmp: estimator.save(tmp), suffix=".keras")
    else:
        atomic_write(
            out_path, lambda tmp: estimator.network.save_weights(tmp), suffix=".weights.h5"
        )
    return out_path


def _salgan_factory(path):
    return load_salgan(path)


register_estimator(
    "salgan",
    _salgan_factory,
    takes_argument=True,
    help="SalGAN (Pan et al. 2017) from the authors' gen_modelWeights0090.npz or a converted .weights.h5",
)
