"""run_training end to end on a tiny SAM set: outputs, TensorBoard scalars, image grids,
checkpoints, generator.keras, the NaN guard, and resume with a changed config."""

import glob
import json
import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import sagim_tf.models.sagim as trainer
from sagim_tf.losses import LOSS_NAMES
from sagim_tf.training import run as training
from sagim_tf.training.callbacks import latest_checkpoint
from sagim_tf.training.config import config_from_dict, load_config, read_config_file
from sagim_tf.training.run import make_datasets, run_training
from sagim_tf.utils.errors import ConfigError, SagimError
from tests.train_helpers import IMAGE_SIZE, tiny_config, write_config

TERMS = tuple(f"{name}_loss" for name in LOSS_NAMES) + ("g_loss", "d_loss")
HEIGHT, WIDTH = IMAGE_SIZE


@pytest.fixture(scope="module")
def finished(tiny_sam, tmp_path_factory):
    data_dir, spec = tiny_sam
    run_dir = tmp_path_factory.mktemp("run") / "run"
    cfg = config_from_dict(tiny_config(data_dir, spec, run_dir, train={"image_every_steps": 3}))
    summary = run_training(cfg)
    return cfg, summary


def _scalar_tags(folder):

    tags = {}
    for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name in ("scalars", ""):
                    tags.setdefault(value.tag, []).append(event.step)
    return tags


def test_outputs_of_a_run(finished):
    cfg, summary = finished
    run_dir = str(cfg.run_dir)
    # The resolved config is saved with the run and reproduces it.
    assert load_config(os.path.join(run_dir, "config.yaml")) == cfg
    # 8 records, batch 4: 2 steps per epoch, 2 epochs, no extra step at the end of data.
    assert summary["g_steps"] == 4
    assert summary["initial_epoch"] == 0
    assert set(summary["history"]) == set(TERMS) | {f"val_{t}" for t in TERMS}
    for values in summary["history"].values():
        assert len(values) == 2 and np.isfinite(values).all()
    # Checkpoints every epoch (keep 2), state.json naming the newest.
    ckpt = os.path.join(run_dir, "checkpoints")
    assert sorted(os.listdir(ckpt)) == [
        "epoch-0001.weights.h5",
        "epoch-0002.weights.h5",
        "state.json",
    ]
    state = json.load(open(os.path.join(ckpt, "state.json")))
    assert state["epoch"] == 2 and state["g_iterations"] == 4
    assert latest_checkpoint(ckpt) == (2, os.path.join(ckpt, "epoch-0002.weights.h5"))
    # G alone, saved as .keras beside the config, loads and edits.
    gen_path = os.path.join(run_dir, "generator.keras")
    assert summary["outputs"]["generator"] == gen_path
    generator = keras.saving.load_model(gen_path)
    model = summary["model_object"]
    image = np.random.default_rng(0).uniform(0, 1, (1, HEIGHT, WIDTH, 3)).astype("float32")
    guidance = np.full((1, HEIGHT, WIDTH, 1), 0.5, "float32")
    np.testing.assert_allclose(
        np.asarray(generator([image, guidance])),
        np.asarray(model.generator([image, guidance])),
        # Same weights, same graph: only float32 rounding of two separately traced calls.
        atol=1e-6,
    )
    assert os.path.isfile(os.path.join(run_dir, "sagim.keras"))


def test_validation_means_are_exact(finished):
    """The logged val_ losses are the batch means' mean, not shrunk by a phantom step."""
    cfg, summary = finished
    model = summary["model_object"]
    _, val = make_datasets(cfg)
    batches = list(val)
    per_batch = [model.test_on_batch(b, return_dict=True) for b in batches]
    sizes = np.array([len(b[0]) for b in batches], float)
    expected = np.sum([r["g_loss"] * n for r, n in zip(per_batch, sizes)]) / sizes.sum()
    # float32 sums in another order (Keras' running mean vs this weighted mean); a phantom
    # step would be off by a whole batch, far above this.
    np.testing.assert_allclose(summary["history"]["val_g_loss"][-1], expected, rtol=1e-4)


def test_tensorboard_scalars_for_every_term(finished):
    cfg, _ = finished
    logs = os.path.join(str(cfg.run_dir), "logs")
    train_tags = _scalar_tags(os.path.join(logs, "train"))
    val_tags = _scalar_tags(os.path.join(logs, "validation"))
    for term in TERMS:
        assert f"epoch_{term}" in train_tags, sorted(train_tags)
        assert sorted(train_tags[f"epoch_{term}"]) == [0, 1]
        assert f"epoch_{term}" in val_tags, sorted(val_tags)


def test_image_grids(finished):
    cfg, _ = finished
    run_dir = str(cfg.run_dir)
    # Every 3 G steps (step 3), and once at the end (step 4).
    pngs = sorted(os.listdir(os.path.join(run_dir, "samples")))
    assert pngs == ["step-000003.png", "step-000004.png"]
    with Image.open(os.path.join(run_dir, "samples", pngs[0])) as im:
        # original | guidance | edited | E(original) | E(edited), one row per sample image.
        assert im.size[0] == 5 * WIDTH
        assert im.size[1] % HEIGHT == 0 and im.size[1] // HEIGHT == 4
    steps = []
    for path in glob.glob(os.path.join(run_dir, "logs", "images", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            steps += [event.step for v in event.summary.value if v.tag == "samples"]
    assert sorted(steps) == [3, 4]


def test_rerun_of_finished_run_does_nothing(finished, caplog):
    cfg, _ = finished
    with caplog.at_level(logging.INFO, logger="sagim_tf"):
        again = run_training(cfg)
    assert again["initial_epoch"] == 2 and again["g_steps"] == 4
    assert "Nothing to do: 2 of 2 epochs already done." in caplog.messages


def test_resume_with_a_different_config_is_refused(finished):
    cfg, _ = finished
    data = tiny_config(cfg.data.dir, cfg.estimator, cfg.run_dir, losses={"adv": 0.0})
    with pytest.raises(ConfigError, match="losses.adv") as info:
        run_training(config_from_dict(data))
    assert "different config" in str(info.value)
    before = sorted(os.listdir(os.path.join(str(cfg.run_dir), "checkpoints")))
    assert before == ["epoch-0001.weights.h5", "epoch-0002.weights.h5", "state.json"]


@pytest.mark.slow
def test_more_epochs_continue_the_run(finished):
    """train.epochs may grow between runs: the run continues from its last epoch."""
    cfg, _ = finished
    more = config_from_dict(
        tiny_config(
            cfg.data.dir, cfg.estimator, cfg.run_dir, train={"epochs": 3, "image_every_steps": 3}
        )
    )
    summary = run_training(more)
    assert summary["initial_epoch"] == 2 and summary["g_steps"] == 6


def test_time_budget_from_the_config_stops_and_saves(tiny_sam, tmp_path):
    """train.time_budget_minutes stops fit after the first step past it; outputs are saved."""
    data_dir, spec = tiny_sam
    cfg = config_from_dict(
        tiny_config(
            data_dir,
            spec,
            tmp_path / "run",
            train={"epochs": 3, "image_every_steps": 0, "time_budget_minutes": 1e-9},
            data={"val_split": ""},
        )
    )
    summary = run_training(cfg)
    assert summary["g_steps"] == 1  # 6 steps were scheduled
    assert os.path.isfile(summary["outputs"]["generator"])


def test_nan_guard_stops_with_a_message(tiny_sam, tmp_path, monkeypatch, caplog):
    data_dir, spec = tiny_sam
    real = trainer.color_loss

    def poisoned(image, edited, guidance, blur=None):
        # Finite on the first G step, NaN from the second on.
        value = real(image, edited, guidance, blur=blur)
        step = tf.cast(trainer_model.g_optimizer.iterations, tf.float32)
        return tf.where(step >= 1.0, tf.constant(float("nan")), value)

    monkeypatch.setattr(trainer, "color_loss", poisoned)
    cfg = config_from_dict(
        tiny_config(
            data_dir,
            spec,
            tmp_path / "run",
            train={"epochs": 3, "image_every_steps": 0},
            data={"val_split": ""},
            losses={"content": 0.0, "cycle": 0.0, "adv": 0.0},
        )
    )
    trainer_model = None

    # The poisoned loss reads the model's step: keep the model that run_training builds.
    real_build = training.build_model

    def build(cfg, estimator=None):
        nonlocal trainer_model
        trainer_model = real_build(cfg, estimator=estimator)
        return trainer_model

    monkeypatch.setattr(training, "build_model", build)
    with pytest.raises(SagimError, match="step 2") as info, caplog.at_level(logging.ERROR):
        run_training(cfg)
    assert isinstance(info.value, FloatingPointError)
    assert "color_loss=nan" in str(info.value) and "g_loss=nan" in str(info.value)
    assert "rec_loss" not in str(info.value)  # only the bad terms are named
    assert any(m.startswith("NaNGuard: non-finite loss at step 2") for m in caplog.messages)
    assert int(trainer_model.g_optimizer.iterations) == 2  # stopped at once
    run_dir = str(cfg.run_dir)
    # No checkpoint of the poisoned, unfinished epoch; no final model.
    assert latest_checkpoint(os.path.join(run_dir, "checkpoints")) is None
    assert not os.path.exists(os.path.join(run_dir, "generator.keras"))


@pytest.mark.slow
def test_nan_guard_with_an_absurd_learning_rate(tiny_sam, tmp_path):
    data_dir, spec = tiny_sam
    cfg = config_from_dict(
        tiny_config(
            data_dir,
            spec,
            tmp_path / "run",
            train={"epochs": 2, "image_every_steps": 0},
            data={"val_split": ""},
            g_optimizer={"learning_rate": 1e30, "name": "sgd", "beta_1": 0.0},
            d_optimizer={"learning_rate": 1e30, "name": "sgd", "beta_1": 0.0},
        )
    )
    with pytest.raises(SagimError, match=r"non-finite loss at step \d+"):
        run_training(cfg)


@pytest.mark.slow
def test_mixed_precision_mirrored_run_and_resume(tiny_sam, tmp_path):
    """configs/sam.yaml's setup (mixed_float16, mirrored) through run_training, then resumed."""
    data_dir, spec = tiny_sam
    previous = keras.mixed_precision.global_policy()
    data = tiny_config(
        data_dir,
        spec,
        tmp_path / "run",
        train={
            "epochs": 1,
            "precision": "mixed_float16",
            "distribution": "mirrored",
            "image_every_steps": 1,
        },
    )
    first = run_training(config_from_dict(data))
    assert keras.mixed_precision.global_policy().name == previous.name  # restored
    assert isinstance(first["model_object"].g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert first["g_steps"] == 2 and np.isfinite(first["history"]["g_loss"]).all()
    assert first["replicas"] == 1  # MirroredStrategy on the one CPU
    assert len(os.listdir(tmp_path / "run" / "samples")) == 2
    data["train"]["epochs"] = 2
    second = run_training(config_from_dict(data))
    assert second["initial_epoch"] == 1 and second["g_steps"] == 4
    assert np.isfinite(second["history"]["val_g_loss"]).all()
    generator = keras.saving.load_model(second["outputs"]["generator"])
    image = np.zeros((1, HEIGHT, WIDTH, 3), "float32")
    assert generator([image, image[..., :1]]).dtype == "float32"


def test_a_run_dir_with_an_old_config_is_named(tiny_sam, tmp_path):
    """A run folder whose config.yaml holds the old [W, H] list: the error says where."""
    data_dir, spec = tiny_sam
    data = tiny_config(data_dir, spec, tmp_path / "run")
    old = dict(data, data=dict(data["data"], image_size=[WIDTH, HEIGHT]))
    os.makedirs(tmp_path / "run")
    write_config(tmp_path / "run" / "config.yaml", old)
    with pytest.raises(ConfigError, match="holds a config.yaml this version cannot read") as info:
        run_training(config_from_dict(data))
    assert "{height: H, width: W}" in str(info.value)


def test_a_run_that_never_checkpointed_takes_the_corrected_config(tiny_sam, tmp_path):
    """A run that failed before its first checkpoint does not block the corrected command."""
    from sagim_tf.training.run import prepare_run_dir

    data_dir, spec = tiny_sam
    first = config_from_dict(tiny_config(data_dir, spec, tmp_path / "run"))
    prepare_run_dir(first)  # as a run that then failed before its first epoch ended
    corrected = config_from_dict(tiny_config(data_dir, spec, tmp_path / "run", losses={"adv": 0.0}))
    prepare_run_dir(corrected)
    assert config_from_dict(read_config_file(tmp_path / "run" / "config.yaml")) == corrected
