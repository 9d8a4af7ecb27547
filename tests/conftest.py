"""Shared fixtures: one tiny SAM dataset for the whole session, built once."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_sam(tmp_path_factory):
    """A tiny SAM set shared by every test that only reads it.

    8 train and 4 test records at 32x24 (width x height), built from generated COCO scenes
    with the fixed contrast estimator, which is also saved as ``.keras`` so that a
    subprocess can load it through a ``keras:PATH`` spec. Returns ``(data_dir, spec)``.
    Tests must not write into ``data_dir``; one that needs its own variant builds it.
    """
    from tests.train_helpers import tiny_sam as build

    return build(tmp_path_factory.mktemp("tiny-sam"))
