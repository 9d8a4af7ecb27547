"""The TF Serving SavedModel: named signatures, parity with Keras G at any size, checks."""

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagim_tf.export import export_savedmodel, load_generator, load_savedmodel, write_models_config
from sagim_tf.export.savedmodel import (
    build_archive,
    clean_staging,
    model_signatures,
    models_config_text,
    versions,
)
from sagim_tf.export.signatures import (
    REQUIRED_SIGNATURES,
    SIGNATURES,
    get_signature,
    signatures_for,
)
from sagim_tf.utils import io
from sagim_tf.utils.errors import ConfigError, ExportError, InputError
from sagim_tf.utils.io import staging_prefix, to_uint8
from tests.export_helpers import (
    batch,
    readme_rest_request_script,
    shared_operator_savedmodel,
    shared_savedmodel,
    tiny_operator_generator,
    trivial_generator,
)
from tests.helpers import tiny_estimator, tiny_sagim


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return shared_savedmodel(tmp_path_factory)


def test_layout_and_named_signatures(exported):
    _, path, loaded = exported
    base = os.path.dirname(path)
    assert os.path.basename(path) == "1" and os.path.basename(base) == "sagim"
    assert versions(base) == [1]
    assert not [e for e in os.listdir(base) if e.startswith(".tmp")]
    assert set(loaded.signatures) == {"serving_default", "edit_uint8"}
    for name, image_dtype, out_dtype in (
        ("serving_default", tf.float32, tf.float32),
        ("edit_uint8", tf.uint8, tf.uint8),
    ):
        sig = loaded.signatures[name]
        _, inputs = sig.structured_input_signature
        assert set(inputs) == {"image", "guidance"}
        assert inputs["image"].dtype == image_dtype and inputs["image"].shape.as_list() == [
            None,
            None,
            None,
            3,
        ]
        assert inputs["guidance"].dtype == tf.float32
        assert inputs["guidance"].shape.as_list() == [None, None, None, 1]
        assert set(sig.structured_outputs) == {"edited"}
        assert sig.structured_outputs["edited"].dtype == out_dtype


def test_savedmodel_follows_the_signature_table(tmp_path_factory):
    g, _, _, loaded = shared_operator_savedmodel(tmp_path_factory)
    assert list(SIGNATURES) == ["serving_default", "edit_uint8", "fields", "edit_masks"]
    assert REQUIRED_SIGNATURES == ("serving_default", "edit_uint8")
    assert set(loaded.signatures) == set(SIGNATURES)
    for name, signature in SIGNATURES.items():
        fn = loaded.signatures[name]
        _, inputs = fn.structured_input_signature
        assert list(signature.inputs)[0] == "image"
        assert set(inputs) == set(signature.inputs)
        for key, tensor in signature.inputs.items():
            assert inputs[key].dtype == tf.as_dtype(tensor.dtype)
            if tensor.is_map:
                assert inputs[key].shape.as_list() == [None, None, None, tensor.channels]
            else:  # strength: a scalar or (B,)
                assert inputs[key].shape.rank is None
        assert set(fn.structured_outputs) == set(signature.outputs)
        for key, tensor in signature.outputs.items():
            assert fn.structured_outputs[key].dtype == tf.as_dtype(tensor.dtype)
    with pytest.raises(ConfigError, match="edit_uint8"):
        get_signature("predict")
    with pytest.raises(ConfigError, match="unknown signature"):
        build_archive(trivial_generator(), signatures=("serving_default", "predict"))


def test_which_signatures_a_model_has():
    assert signatures_for(False, False) == ("serving_default", "edit_uint8")
    assert signatures_for(True, False) == ("serving_default", "edit_uint8", "fields")
    assert signatures_for(False, True) == ("serving_default", "edit_uint8", "edit_masks")
    assert model_signatures(trivial_generator()) == REQUIRED_SIGNATURES
    assert model_signatures(tiny_operator_generator())[-1] == "fields"
    assert model_signatures(trivial_generator(), estimator=tiny_estimator())[-1] == "edit_masks"
    with pytest.raises(ConfigError, match="operator-head"):
        build_archive(trivial_generator(), signatures=("fields",))
    with pytest.raises(ConfigError, match="estimator"):
        build_archive(trivial_generator(), signatures=("edit_masks",))


@pytest.mark.parametrize("shape", [(1, 16, 16), (2, 13, 17), (3, 5, 9), (1, 40, 24)])
def test_serving_default_matches_keras(exported, shape):
    g, _, loaded = exported
    image, guidance = batch(*shape, seed=sum(shape))
    out = loaded.signatures["serving_default"](image=image, guidance=guidance)
    edited = out["edited"].numpy()
    reference = np.asarray(g([image, guidance], training=False))
    assert edited.shape == image.shape
    # 1e-5: the traced graph and eager Keras run the same float32 ops, in a different order.
    assert np.abs(edited - reference).max() <= 1e-5
    assert np.abs(reference - image).max() > 0.05  # the edit is not the identity


@pytest.mark.parametrize("shape", [(1, 12, 20), (2, 7, 7)])
def test_edit_uint8_matches_keras(exported, shape):
    g, _, loaded = exported
    image, guidance = batch(*shape, seed=3)
    image8 = to_uint8(image)
    out = loaded.signatures["edit_uint8"](image=image8, guidance=guidance)["edited"]
    assert out.dtype == tf.uint8
    reference = to_uint8(np.asarray(g([image8.astype(np.float32) / 255.0, guidance])))
    # One uint8 step: float32 noise can carry a value across a rounding boundary.
    assert np.abs(out.numpy().astype(int) - reference.astype(int)).max() <= 1


@pytest.mark.parametrize(
    "case",
    ["size_mismatch", "batch_mismatch", "out_of_range", "nan", "guidance_range", "empty"],
)
def test_in_graph_checks_raise_invalid_argument(exported, case):
    _, _, loaded = exported
    image, guidance = batch(2, 8, 8)
    if case == "size_mismatch":
        guidance = guidance[:, :, :6]
    elif case == "batch_mismatch":
        guidance = guidance[:1]
    elif case == "out_of_range":
        image = image * 3
    elif case == "nan":
        image[0, 0, 0, 0] = np.nan
    elif case == "guidance_range":
        guidance = guidance - 1
    elif case == "empty":
        image, guidance = image[:, :0], guidance[:, :0]
    with pytest.raises(tf.errors.InvalidArgumentError):
        loaded.signatures["serving_default"](image=image, guidance=guidance)


def test_saved_model_cli_shows_named_signatures(exported):
    _, path, _ = exported
    cli = shutil.which("saved_model_cli") or os.path.join(
        os.path.dirname(sys.executable), "saved_model_cli"
    )
    if not os.path.exists(cli):
        pytest.skip("saved_model_cli not installed")
    result = subprocess.run(
        [cli, "show", "--dir", path, "--all"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for token in (
        "signature_def['serving_default']",
        "signature_def['edit_uint8']",
        "inputs['image']",
        "inputs['guidance']",
        "outputs['edited']",
        "DT_UINT8",
    ):
        assert token in text
    assert "args_0" not in text and "output_0" not in text


def test_versions_increment_and_refuse_overwrite(tmp_path):
    g, out = trivial_generator(), tmp_path
    assert export_savedmodel(g, out, name="sagim").endswith(os.path.join("sagim", "1"))
    path2 = export_savedmodel(g, out, name="sagim")
    assert path2.endswith(os.path.join("sagim", "2"))
    with pytest.raises(ConfigError, match="already exists"):
        export_savedmodel(g, out, name="sagim", version=2)
    assert export_savedmodel(g, out, name="sagim", version=2, overwrite=True) == path2
    with pytest.raises(ConfigError):
        export_savedmodel(g, out, name="bad/name")
    with pytest.raises(ConfigError):
        export_savedmodel(g, out, name="sagim", version=0)


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_exported_version_is_readable_by_other_users(tmp_path, umask_022):
    # a non-root TF Serving container must read it: 0755 folders and 0644 files, not the
    # 0700 of the temporary folder it was written in
    path = export_savedmodel(trivial_generator(), tmp_path, name="sagim")
    modes = {}
    for root, _dirs, files in os.walk(path):
        modes[root] = os.stat(root).st_mode & 0o777
        for f in files:
            modes[os.path.join(root, f)] = os.stat(os.path.join(root, f)).st_mode & 0o777
    assert os.path.join(path, "variables") in modes
    wrong = {p: oct(m) for p, m in modes.items() if m != (0o755 if os.path.isdir(p) else 0o644)}
    assert not wrong, wrong


def test_a_version_is_published_only_after_its_check_passes(tmp_path):
    g, base = trivial_generator(), tmp_path / "sagim"
    seen = []

    def refuse(path):
        seen.append(sorted(os.listdir(path)))
        assert os.path.basename(path).startswith(".tmp-1-")  # hidden, not yet a version
        assert versions(base) == [1] * (len(seen) - 1)  # nothing new while it is checked
        raise ExportError("the exported files differ from the Keras model")

    with pytest.raises(ExportError, match="version 1 was not published.*differ"):
        export_savedmodel(g, tmp_path, name="sagim", check=refuse)
    assert "saved_model.pb" in seen[0] and "variables" in seen[0]
    assert os.listdir(base) == []  # no version, no leftover temporary folder
    path = export_savedmodel(g, tmp_path, name="sagim", check=lambda p: None)
    assert versions(base) == [1] and path.endswith(os.path.join("sagim", "1"))
    before = {f: os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)}
    with pytest.raises(ExportError, match="not published"):  # overwrite keeps the old one
        export_savedmodel(
            trivial_generator(seed=1),
            tmp_path,
            name="sagim",
            version=1,
            overwrite=True,
            check=refuse,
        )
    assert {f: os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)} == before
    assert sorted(os.listdir(base)) == ["1"]
    load_savedmodel(path)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_next_export_clears_what_killed_ones_left(tmp_path):
    """Staging folders of dead exports are never versions and go with the next export; a
    version moved aside by a killed overwrite is put back; a live export's are kept."""
    g, base = trivial_generator(), tmp_path / "sagim"
    first = export_savedmodel(g, tmp_path, name="sagim")
    owner = f"p{_dead_pid()}@{io._host()}"
    killed = base / f".tmp-2-{owner}-abcd1234"  # killed while checking version 2: complete
    shutil.copytree(first, killed)
    moved = base / f".old-1-{owner}-efgh5678"  # killed while overwriting version 1
    moved.mkdir()
    os.rename(first, moved / "version")
    running = base / f"{staging_prefix('3')}ijkl9012"  # this process: a live export
    running.mkdir()
    config_tmp = tmp_path / f".tmp-{owner}-mnop.config"  # a killed models.config write
    config_tmp.write_text("model_config_list {")
    assert versions(base) == []  # no staging folder is a version, complete or not
    assert clean_staging(base) == sorted([str(killed), str(moved)])
    assert sorted(os.listdir(base)) == sorted(["1", running.name]) and versions(base) == [1]
    load_savedmodel(first)  # the overwritten version, back in place
    shutil.copytree(first, killed)
    assert export_savedmodel(g, tmp_path, name="sagim").endswith(os.path.join("sagim", "2"))
    assert sorted(os.listdir(base)) == sorted(["1", "2", running.name])
    write_models_config(tmp_path, "sagim")
    assert not config_tmp.exists()


def test_models_config(tmp_path):
    path = write_models_config(tmp_path, "sagim")
    text = open(path).read()
    assert 'name: "sagim"' in text and 'base_path: "/models/sagim"' in text
    assert 'model_platform: "tensorflow"' in text
    write_models_config(tmp_path, "other")
    text = open(path).read()
    assert text.count("config {") == 2 and 'base_path: "/models/other"' in text
    write_models_config(tmp_path, "sagim")
    assert open(path).read() == text


def test_repository_models_config_matches_writer():
    repo_config = os.path.join(os.path.dirname(__file__), os.pardir, "export", "models.config")
    assert open(repo_config).read() == models_config_text(["sagim"])


def test_load_generator_from_sagim_and_bare_files(tmp_path):
    model = tiny_sagim()
    model.build()
    image, guidance = batch(1, 16, 16)
    expected = np.asarray(model.generator([image, guidance]))
    model.save(tmp_path / "sagim.keras")
    g = load_generator(tmp_path / "sagim.keras")
    # 1e-6: same weights and ops; absorbs float32 rounding if the reloaded model fuses ops anew.
    np.testing.assert_allclose(np.asarray(g([image, guidance])), expected, atol=1e-6)
    model.generator.save(tmp_path / "g.keras")
    g2 = load_generator(tmp_path / "g.keras")
    np.testing.assert_allclose(np.asarray(g2([image, guidance])), expected, atol=1e-6)


def test_load_savedmodel_errors(tmp_path):
    with pytest.raises(InputError, match="saved_model.pb"):
        load_savedmodel(tmp_path)


def test_load_generator_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_generator(tmp_path / "missing.keras")
    with pytest.raises(InputError, match="directory"):
        load_generator(tmp_path)
    bad = tmp_path / "corrupt.keras"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(InputError, match="corrupt"):
        load_generator(bad)
    with pytest.raises(InputError, match=".keras"):
        load_generator(bad.rename(tmp_path / "model.h5"))
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    other.save(tmp_path / "dense.keras")
    with pytest.raises(InputError, match="not G"):
        load_generator(tmp_path / "dense.keras")


def test_readme_rest_request_fits_the_signature(exported):
    _, _, loaded = exported
    script = readme_rest_request_script()
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    request = json.loads(result.stdout)
    signature = SIGNATURES[request["signature_name"]]
    assert set(request["inputs"]) == set(signature.inputs)
    inputs = {
        key: np.asarray(value, dtype=signature.inputs[key].dtype)
        for key, value in request["inputs"].items()
    }
    edited = loaded.signatures[signature.name](**inputs)["edited"].numpy()
    assert edited.shape == inputs["image"].shape
