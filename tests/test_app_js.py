"""The page's JavaScript rules under Node.js, without a browser: the guiding map against the
shared vectors, and the operators against ``apply_fields`` on a photo of the field grid's
size and of another size (strips, bands of rows for the workers, the reflected edges).

The same modules run in the page (tests/test_app_browser.py checks them there too); Node
is what ``npm ci`` needs anyway, so these run wherever the app can be built.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from sagim_tf.layers.photo_operators import LUMA, OPERATOR_NAMES, OPERATOR_RANGES
from sagim_tf.models.generate import apply_fields, scale_fields
from tests.app_helpers import GUIDANCE_VECTORS, WEB, photo, unavailable


def _node(script: str, data) -> object:
    node = shutil.which("node")
    if node is None:
        unavailable("Node.js is not installed")
    done = subprocess.run(
        [node, "--input-type=module", "-e", script],
        input=json.dumps(data),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=WEB,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


READ_STDIN = """
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const data = JSON.parse(chunks.join(""));
"""


def test_guidance_rule_matches_the_vectors_in_node():
    cases = json.loads(GUIDANCE_VECTORS.read_text())["cases"]
    results = _node(
        READ_STDIN
        + """
const g = await import("./js/guidance.js");
console.log(JSON.stringify(data.map((c) => Array.from(g.guidanceFromMasks(
  Float32Array.from(c.saliency), Uint8Array.from(c.here), Uint8Array.from(c.away),
  c.width, c.height)))));
""",
        cases,
    )
    for case, result in zip(cases, results):
        # float64 (JS) against float32 (Python), and the vectors' 7 decimals
        np.testing.assert_allclose(result, case["guidance"], atol=1e-5, err_msg=case["name"])


@pytest.mark.parametrize("strength, size", [(1.0, (83, 61)), (0.4, (83, 61)), (0.7, (16, 12))])
def test_operators_match_apply_fields_in_node(strength, size):
    # a photo larger than the 16x12 grid (the detail change made on the working copy and
    # interpolated), and one of the grid's size (the detail blur at that size)
    W, H = size
    image = photo(W, H, seed=2)
    fields = np.random.default_rng(3).normal(0, 0.8, (12, 16, 7)).astype(np.float32)
    work = cv2.resize(image.astype(np.float32) / 255.0, (16, 12), interpolation=cv2.INTER_AREA)
    expected = apply_fields(image, scale_fields(fields, strength), work_image=work)
    data = {
        "W": W,
        "H": H,
        "image": image.ravel().tolist(),
        "work": work.ravel().tolist(),
        "fields": fields.ravel().tolist(),
        "ranges": [OPERATOR_RANGES[n] for n in OPERATOR_NAMES],
        "luma": list(LUMA),
        "strength": strength,
    }
    out = _node(
        READ_STDIN
        + """
const op = await import("./js/operators.js");
const W = data.W, H = data.H;
const work = {width: 16, height: 12, kind: "rgb32", data: Float32Array.from(data.work)};
const src = {width: W, height: H, kind: "rgba8", data: new Uint8ClampedArray(W * H * 4)};
for (let i = 0; i < W * H; i++) {
  for (let c = 0; c < 3; c++) src.data[i * 4 + c] = data.image[i * 3 + c];
  src.data[i * 4 + 3] = 255;
}
const coef = op.coefficientsFromFields(Float32Array.from(data.fields), data.ranges, data.luma,
                                       data.strength);
const whole = {width: W, height: H, kind: "rgba8", data: new Uint8ClampedArray(W * H * 4)};
await op.applyCoefficients(src, coef, 16, 12, whole, {luma: data.luma, stripRows: 8, work});
// two bands, as parallel.js hands them to workers
const banded = new Uint8ClampedArray(W * H * 4);
const half = Math.floor(H / 2);
for (const [start, stop] of [[0, half], [half, H]]) {
  const s0 = Math.max(0, start - 3), s1 = Math.min(H, stop + 3);
  const part = {width: W, height: s1 - s0, kind: "rgba8", data: src.data.slice(s0 * W * 4, s1 * W * 4)};
  const dst = {width: W, height: stop - start, kind: "rgba8",
               data: new Uint8ClampedArray(W * (stop - start) * 4)};
  await op.applyCoefficients(part, coef, 16, 12, dst,
                             {luma: data.luma, work, rows: {start, stop, height: H, srcStart: s0}});
  banded.set(dst.data, start * W * 4);
}
const rgb = (d) => Array.from(d).filter((_, i) => i % 4 !== 3);
console.log(JSON.stringify({whole: rgb(whole.data), banded: rgb(banded)}));
""",
        data,
    )
    whole = np.asarray(out["whole"], np.int64).reshape(H, W, 3)
    banded = np.asarray(out["banded"], np.int64).reshape(H, W, 3)
    np.testing.assert_array_equal(banded, whole)  # bands are the same arithmetic
    diff = np.abs(whole - expected.astype(np.int64))
    # uint8 rounding of float64 (JS) against float32 (NumPy) values: a rare 1-level step
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (diff.max(), (diff > 0).mean())
