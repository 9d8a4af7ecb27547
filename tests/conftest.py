"""Shared test setup: the environment, a dtype-policy guard, and one tiny SAM dataset."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def restore_dtype_policy():
    """Give the next test the global Keras dtype policy this one started with.

    A test that sets a mixed-precision policy and fails before resetting it would
    otherwise change every later test. Keras is not imported here just for this.
    """
    keras = sys.modules.get("keras")
    before = keras.config.dtype_policy().name if keras is not None else "float32"
    yield
    keras = sys.modules.get("keras")
    if keras is not None and keras.config.dtype_policy().name != before:
        keras.config.set_dtype_policy(before)


@pytest.fixture(scope="session")
def tiny_sam(tmp_path_factory):
    """A tiny SAM set shared by every test that only reads it.

    8 train and 4 test records of 24x32 pixels (height x width), built from generated COCO scenes
    with the fixed contrast estimator, which is also saved as ``.keras`` so that a
    subprocess can load it through a ``keras:PATH`` spec. Returns ``(data_dir, spec)``.
    Tests must not write into ``data_dir``; one that needs its own variant builds it.
    """
    from tests.train_helpers import tiny_sam as build

    return build(tmp_path_factory.mktemp("tiny-sam"))
