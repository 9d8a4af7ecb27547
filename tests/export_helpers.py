"""Helpers shared by the export and serving tests: tiny G's, random batches, a free port."""

from __future__ import annotations

import pathlib
import re
import socket
import subprocess

import keras
import numpy as np

from sagim_tf.export import export_savedmodel, load_savedmodel
from sagim_tf.models.generator import SaGIMGenerator
from tests.helpers import nudge_operator_head, tiny_estimator


def tiny_generator(seed: int = 0):
    """A tiny G whose last convolution starts large, so its edit is far from the identity.

    (A default-initialised G barely changes its input, which would make parity trivial.)
    """
    keras.utils.set_random_seed(seed)
    g = SaGIMGenerator(base_filters=4, depth=2, num_residual_blocks=1, output_init_stddev=0.3)
    g([np.zeros((1, 8, 8, 3), np.float32), np.zeros((1, 8, 8, 1), np.float32)])
    return g


def tiny_operator_generator(seed: int = 0):
    """A tiny operator-head G (fields every 4 pixels, trained size 64) with non-zero fields."""
    keras.utils.set_random_seed(seed)
    g = SaGIMGenerator(
        base_filters=4,
        depth=2,
        num_residual_blocks=1,
        head="operators",
        field_stride=4,
        work_size=64,
    )
    g([np.zeros((1, 8, 8, 3), np.float32), np.zeros((1, 8, 8, 1), np.float32)])
    return nudge_operator_head(g, seed=seed + 1)


def masks(b, h, w):
    """``(emphasize, deemphasize)`` float32 (b, h, w, 1): a block upper left, one lower right."""
    emphasize = np.zeros((b, h, w, 1), np.float32)
    deemphasize = np.zeros_like(emphasize)
    emphasize[:, h // 6 : h // 2, w // 8 : w // 2] = 1.0
    deemphasize[:, h // 2 :, (2 * w) // 3 :] = 0.9
    return emphasize, deemphasize


def batch(b, h, w, seed=0):
    """A random ``(image, guidance)`` pair, float32 in [0, 1], shapes (b, h, w, 3|1)."""
    rng = np.random.default_rng(seed)
    return (
        rng.uniform(0, 1, (b, h, w, 3)).astype(np.float32),
        rng.uniform(0, 1, (b, h, w, 1)).astype(np.float32),
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed_pair(directory, name: str = "cert") -> tuple[str, str]:
    """A self-signed certificate for localhost and 127.0.0.1 and its key, made by
    ``openssl``: ``(cert_path, key_path)`` under ``directory``."""
    cert, key = (str(pathlib.Path(directory) / f"{name}.{ext}") for ext in ("pem", "key"))
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        + ["-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", key, "-out", cert]
        + ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


def trivial_generator(seed: int = 0):
    """A model with G's interface and almost no layers: quick to export (for bookkeeping tests)."""
    keras.utils.set_random_seed(seed)
    image = keras.Input((None, None, 3), name="image")
    guidance = keras.Input((None, None, 1), name="guidance")
    x = keras.layers.Concatenate()([image, guidance])
    out = keras.layers.Conv2D(3, 1, activation="sigmoid")(x)
    return keras.Model([image, guidance], out)


README = pathlib.Path(__file__).resolve().parent.parent / "export" / "README.md"


def readme_python(heading: str, index: int = 0) -> str:
    """The ``index``-th ```python block under ``## heading`` in export/README.md."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)[index]


def readme_rest_request_script() -> str:
    """The Python heredoc of export/README.md's REST section, which prints request.json."""
    section = README.read_text(encoding="utf-8").split("### REST\n", 1)[1]
    return re.search(r"<<'EOF'\n(.*?)\nEOF\n", section, re.S).group(1)


_SHARED = {}


def shared_operator_savedmodel(tmp_path_factory):
    """A tiny operator-head G exported once per session with a tiny E, so with every
    signature (``fields`` and ``edit_masks`` too): ``(G, E, version_path, loaded)``."""
    if "operators" not in _SHARED:
        g, e = tiny_operator_generator(), tiny_estimator()
        out = tmp_path_factory.mktemp("shared_operator_export")
        path = export_savedmodel(g, out, name="sagim", estimator=e)
        _SHARED["operators"] = (g, e, path, load_savedmodel(path))
    return _SHARED["operators"]


def shared_savedmodel(tmp_path_factory):
    """One tiny G exported once per test session: ``(G, version_path, loaded)``.

    Exporting costs ~10 s on two cores, so the SavedModel and serving tests share it;
    they must not write into its directory.
    """
    if "savedmodel" not in _SHARED:
        g = tiny_generator()
        path = export_savedmodel(g, tmp_path_factory.mktemp("shared_export"), name="sagim")
        _SHARED["savedmodel"] = (g, path, load_savedmodel(path))
    return _SHARED["savedmodel"]
