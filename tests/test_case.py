"""Shared checks for every layer and model, so that a network's own test stays short.

In the manner of keras-hub's ``TestCase``: a test class subclasses :class:`TestCase` and calls

- :meth:`TestCase.run_serialization_test`: ``get_config`` holds exactly the constructor
  arguments (flat), survives JSON, and ``from_config`` and
  ``keras.saving.serialize_keras_object`` / ``deserialize_keras_object`` rebuild an equal
  object;
- :meth:`TestCase.run_model_saving_test`: a ``.keras`` save and load gives the same outputs
  (a layer is wrapped in a functional model first);
- :meth:`TestCase.run_precision_test`: under ``mixed_float16`` and ``mixed_bfloat16``, the
  variables stay float32, the layers compute in the policy's dtype (except those the
  network pins to float32), and the outputs are finite, whether the policy is the global
  one (restored afterwards) or the ``dtype`` argument.

The same checks are module-level functions for plain pytest functions, e.g.::

    from tests.test_case import run_serialization_test

    def test_sagim_serialization():
        run_serialization_test(SaGIM, {"generator": ..., ...})

This file also tests the checks themselves: each one must fail on a layer that breaks its
rule.
"""

import contextlib
import inspect
import json
import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest

# Keys that Keras' base ``Layer.get_config`` adds besides the constructor's own arguments.
BASE_CONFIG_KEYS = ("name", "trainable", "dtype")
PRECISION_POLICIES = ("mixed_float16", "mixed_bfloat16")


def _jsonable(value):
    """``value`` as it reads back from JSON (tuples become lists, and so on).

    A Keras object given as a constructor argument (a sub-model, say) is compared through
    ``keras.saving.serialize_keras_object``, which is how a config stores it.
    """
    if isinstance(value, (keras.layers.Layer, keras.Operation)):
        value = keras.saving.serialize_keras_object(value)
    return json.loads(json.dumps(value))


def _constructor_arguments(cls):
    """Names of ``cls.__init__``'s own arguments, without ``self`` and ``**kwargs``.

    A class that inherits Keras' constructor has no arguments of its own.
    """
    owner = next(klass for klass in cls.__mro__ if "__init__" in vars(klass))
    if owner.__module__.startswith("keras."):
        return set()
    parameters = inspect.signature(cls.__init__).parameters.values()
    return {
        p.name
        for p in parameters
        if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


def _kwargs(init_kwargs):
    """The constructor arguments; a function is called afresh for each object it builds."""
    return dict(init_kwargs() if callable(init_kwargs) else init_kwargs)


def _as_list(outputs):
    if isinstance(outputs, dict):
        return [outputs[k] for k in sorted(outputs)]
    if isinstance(outputs, (list, tuple)):
        return list(outputs)
    return [outputs]


def _numpy_outputs(outputs):
    return [keras.ops.convert_to_numpy(x) for x in _as_list(outputs)]


@contextlib.contextmanager
def dtype_policy(name):
    """Set the global Keras dtype policy to ``name`` inside the block, then restore it."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield keras.dtype_policies.get(name)
    finally:
        keras.config.set_dtype_policy(previous)


def run_serialization_test(cls, init_kwargs):
    """Check that ``cls(**init_kwargs)`` serializes to exactly its constructor arguments.

    Args:
        cls: a layer or model class registered with ``keras.saving``.
        init_kwargs: dict, or a function that returns one (called afresh for each object,
            e.g. when arguments are sub-models). Constructor arguments; use values that
            differ from the defaults, so that a dropped argument shows.

    Returns:
        The instance built from ``init_kwargs``.
    """
    init_kwargs = _kwargs(init_kwargs)
    instance = cls(**init_kwargs)
    config = instance.get_config()

    # 1. Flat and exact: the constructor's arguments and Keras' base keys, nothing else.
    expected = _constructor_arguments(cls) | set(BASE_CONFIG_KEYS)
    extra = set(config) - expected
    missing = expected - set(config)
    assert not extra and not missing, (
        f"{cls.__name__}.get_config() must hold exactly the constructor arguments; "
        f"extra keys {sorted(extra)}, missing {sorted(missing)}"
    )
    for key, value in init_kwargs.items():
        assert _jsonable(config[key]) == _jsonable(value), (
            f"{cls.__name__}.get_config()[{key!r}] is {config[key]!r}, built with {value!r}"
        )

    # 2. Through JSON and back: from_config rebuilds an object with the same config.
    revived = cls.from_config(json.loads(json.dumps(config)))
    assert _jsonable(revived.get_config()) == _jsonable(config)

    # 3. Keras' own serialization (what a .keras file stores) round-trips too.
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(instance)))
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is cls
    assert _jsonable(revived.get_config()) == _jsonable(config)
    return instance


def _as_model(instance, input_data):
    """``instance`` itself if it is a model, else a functional model around the layer."""
    if isinstance(instance, keras.Model):
        return instance
    data = _as_list(input_data)
    inputs = [keras.Input(shape=np.shape(x)[1:], name=f"input_{i}") for i, x in enumerate(data)]
    if not isinstance(input_data, (list, tuple)):
        inputs = inputs[0]
    return keras.Model(inputs, instance(inputs))


def run_model_saving_test(cls, init_kwargs, input_data, tmp_path=None):
    """Check that a ``.keras`` save and load gives the same object and the same outputs.

    Args:
        cls: a layer or model class registered with ``keras.saving``.
        init_kwargs: dict, or a function that returns one. Constructor arguments.
        input_data: array or list of arrays. One batch to call the object on.
        tmp_path: path-like or None. Folder for the file; None uses a temporary folder.
            Defaults to None.
    """
    instance = cls(**_kwargs(init_kwargs))
    model = _as_model(instance, input_data)
    expected = _numpy_outputs(model(input_data))
    with contextlib.ExitStack() as stack:
        folder = tmp_path or stack.enter_context(tempfile.TemporaryDirectory())
        path = Path(folder) / f"{cls.__name__}.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
    if loaded is not None and isinstance(instance, keras.Model):
        assert type(loaded) is cls
    else:
        assert any(type(layer) is cls for layer in loaded.layers)
    actual = _numpy_outputs(loaded(input_data))
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        # Same weights, same graph, same machine: the outputs must match bit for bit.
        np.testing.assert_array_equal(a, e)


def _sublayers(layer):
    """Every layer inside ``layer`` (itself excluded), nested models included."""
    found = []
    for sub in getattr(layer, "_layers", []) or []:
        if isinstance(sub, keras.layers.InputLayer):
            continue
        found.append(sub)
        found.extend(_sublayers(sub))
    return found


def _check_precision(instance, input_data, policy, float32_layers, how):
    outputs = _numpy_outputs(instance(input_data))
    where = f"{type(instance).__name__} {how} {policy.name}"
    assert instance.compute_dtype == policy.compute_dtype, (
        f"{where}: computes in {instance.compute_dtype}"
    )
    for variable in instance.weights:
        assert variable.dtype == "float32", f"{where}: {variable.path} is {variable.dtype}"
    sublayers = _sublayers(instance)
    unknown = float32_layers - {layer.name for layer in sublayers}
    assert not unknown, f"float32_layers names no sublayer: {sorted(unknown)}"
    for layer in sublayers:
        want = "float32" if layer.name in float32_layers else policy.compute_dtype
        assert layer.compute_dtype == want, (
            f"{where}: layer {layer.name!r} computes in {layer.compute_dtype}, expected {want}"
        )
    for output in outputs:
        assert np.all(np.isfinite(output.astype(np.float32))), f"{where}: non-finite output"


def run_precision_test(cls, init_kwargs, input_data, float32_layers=()):
    """Check mixed precision: float32 variables, the policy's compute dtype, finite outputs.

    Each policy in ``PRECISION_POLICIES`` is tried twice: set globally while the object is
    built and called (the previous global policy is restored afterwards, also on failure),
    and passed as the ``dtype`` argument under the default float32 policy.

    Args:
        cls: a layer or model class.
        init_kwargs: dict, or a function that returns one (called under each policy, so
            that sub-models are built under it too). Constructor arguments, without
            ``dtype``.
        input_data: array or list of arrays. One batch to call the object on.
        float32_layers: iterable of str. Names of sublayers the network pins to float32
            (e.g. an output layer kept in full precision). Defaults to ``()``.
    """
    float32_layers = set(float32_layers)
    for name in PRECISION_POLICIES:
        with dtype_policy(name) as policy:
            instance = cls(**_kwargs(init_kwargs))
            _check_precision(instance, input_data, policy, float32_layers, "under global")
        with dtype_policy("float32"):
            policy = keras.dtype_policies.get(name)
            instance = cls(**_kwargs(init_kwargs), dtype=policy)
            _check_precision(instance, input_data, policy, float32_layers, "with dtype=")
            assert _jsonable(instance.get_config()["dtype"]) == _jsonable(
                keras.dtype_policies.serialize(policy)
            ), f"{cls.__name__}.get_config() loses its dtype policy"


class TestCase:
    """Base class for a network's test class; pytest collects subclasses named ``Test*``.

    Example:
        ```python
        class TestGaussianBlur(TestCase):
            def test_serialization(self):
                self.run_serialization_test(GaussianBlur, {"size": 5, "sigma": 1.5})
        ```
    """

    @pytest.fixture(autouse=True)
    def _keep_tmp_path(self, tmp_path):
        self.tmp_path = tmp_path

    def run_serialization_test(self, cls, init_kwargs):
        return run_serialization_test(cls, init_kwargs)

    def run_model_saving_test(self, cls, init_kwargs, input_data):
        run_model_saving_test(cls, init_kwargs, input_data, tmp_path=self.tmp_path)

    def run_precision_test(self, cls, init_kwargs, input_data, float32_layers=()):
        run_precision_test(cls, init_kwargs, input_data, float32_layers=float32_layers)


# --- The checks fail when they should -------------------------------------------------


# Registered under this module's own name: pytest may import this file twice (as
# ``test_case`` and as ``tests.test_case``), and each copy must find its own classes.
@keras.saving.register_keras_serializable(package=f"sagim_tf_tests.{__name__}")
class _Scale(keras.layers.Layer):
    """Multiplies by ``factor``; ``forget`` drops the factor from its config (a bug)."""

    def __init__(self, factor=2.0, forget=False, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor
        self.forget = forget
        self.kernel = None

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(), initializer="ones", name="kernel")

    def call(self, x):
        return x * self.factor * self.kernel

    def get_config(self):
        config = super().get_config()
        config["forget"] = self.forget
        if not self.forget:
            config["factor"] = self.factor
        return config


@keras.saving.register_keras_serializable(package=f"sagim_tf_tests.{__name__}")
class _Float32Variables(_Scale):
    """Keeps computing in float32 whatever the policy (a layer that ignores mixed precision)."""

    def __init__(self, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)


class TestTheChecks(TestCase):
    def test_a_correct_layer_passes(self):
        x = np.ones((2, 3), np.float32)
        self.run_serialization_test(_Scale, {"factor": 3.0})
        self.run_model_saving_test(_Scale, {"factor": 3.0}, x)
        self.run_precision_test(_Scale, {"factor": 3.0}, x)

    def test_serialization_catches_a_dropped_argument(self):
        with pytest.raises(AssertionError, match="missing \\['factor'\\]"):
            self.run_serialization_test(_Scale, {"factor": 3.0, "forget": True})

    def test_precision_catches_a_pinned_dtype(self):
        with pytest.raises(AssertionError, match="mixed_float16"):
            self.run_precision_test(_Float32Variables, {}, np.ones((2, 3), np.float32))
        assert keras.config.dtype_policy().name == "float32"
