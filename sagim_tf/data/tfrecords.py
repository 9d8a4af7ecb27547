"""The SAM TFRecord schema: one ``tf.train.Example`` per image.

Features (FORMAT_VERSION 1); every map and mask has the image's stored size:

======================  ======  =====================================================
key                     type    content
======================  ======  =====================================================
image/encoded           bytes   RGB image, JPEG (or PNG, see ``image/format``)
image/format            bytes   ``b"jpeg"`` or ``b"png"``
image/height, width     int64   stored size
image/id                int64   COCO image id
image/file_name         bytes   COCO file name
saliency/encoded        bytes   E's map of the stored image, 8-bit greyscale PNG
guidance/encoded        bytes   continuous guiding map, 8-bit greyscale PNG
guidance_binary/encoded bytes   binary guiding map (= O_low's mask), PNG, 0 or 255
mask_low/encoded        bytes   O_low's mask, PNG, 0 or 255
mask_high/encoded       bytes   O_high's mask, PNG, 0 or 255
low/ann_id, high/ann_id int64   COCO annotation ids of O_low and O_high
low/category_id, ...    int64   their category ids (``high/category_id`` too)
factors                 float   [raise fraction r, lower factor b]
object/ann_ids          int64   all candidate objects' annotation ids
object/mean_saliency    float   their mean saliency under E
======================  ======  =====================================================

Encoding is deterministic (OpenCV's encoders with fixed parameters and
``SerializeToString(deterministic=True)``), so the same inputs give the same bytes.
"""

from __future__ import annotations

import cv2
import numpy as np

FORMAT_VERSION = 1

MAP_KEYS = ("saliency", "guidance", "guidance_binary", "mask_low", "mask_high")


def encode_png(x: np.ndarray) -> bytes:
    """uint8 (H, W), (H, W, 1) or RGB (H, W, 3) -> PNG bytes."""
    x = np.asarray(x)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim == 3:
        x = x[..., ::-1]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(x), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:  # pragma: no cover
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def encode_jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def decode_numpy(data: bytes, channels: int) -> np.ndarray:
    """Encoded bytes -> uint8 (H, W, channels), RGB order for 3 channels."""
    flag = cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE
    x = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if x is None:
        raise ValueError("cannot decode image bytes")
    return x[..., ::-1].copy() if channels == 3 else x[..., None]


def serialize_example(rec: dict) -> bytes:
    """A record dict (see the module table; maps as uint8 arrays) -> serialized Example."""
    import tensorflow as tf  # lazy: the manifest reader imports this module without TF

    def b(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    def i(vs):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in vs]))

    def f(vs):
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in vs]))

    h, w = rec["saliency"].shape[:2]
    feats = {
        "image/encoded": b(rec["image_encoded"]),
        "image/format": b(rec["image_format"].encode()),
        "image/height": i([h]),
        "image/width": i([w]),
        "image/id": i([rec["image_id"]]),
        "image/file_name": b(rec["file_name"].encode()),
        "low/ann_id": i([rec["low_ann_id"]]),
        "high/ann_id": i([rec["high_ann_id"]]),
        "low/category_id": i([rec["low_category_id"]]),
        "high/category_id": i([rec["high_category_id"]]),
        "factors": f(rec["factors"]),
        "object/ann_ids": i(rec["object_ann_ids"]),
        "object/mean_saliency": f(rec["object_mean_saliency"]),
    }
    for key in MAP_KEYS:
        feats[f"{key}/encoded"] = b(encode_png(rec[key]))
    ex = tf.train.Example(features=tf.train.Features(feature=feats))
    return ex.SerializeToString(deterministic=True)


def feature_spec():
    """The ``tf.io.parse_single_example`` spec of the schema."""
    import tensorflow as tf  # lazy: the manifest reader imports this module without TF

    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/format": tf.io.FixedLenFeature([], tf.string),
        "image/height": tf.io.FixedLenFeature([], tf.int64),
        "image/width": tf.io.FixedLenFeature([], tf.int64),
        "image/id": tf.io.FixedLenFeature([], tf.int64),
        "image/file_name": tf.io.FixedLenFeature([], tf.string),
        "low/ann_id": tf.io.FixedLenFeature([], tf.int64),
        "high/ann_id": tf.io.FixedLenFeature([], tf.int64),
        "low/category_id": tf.io.FixedLenFeature([], tf.int64),
        "high/category_id": tf.io.FixedLenFeature([], tf.int64),
        "factors": tf.io.FixedLenFeature([2], tf.float32),
        "object/ann_ids": tf.io.VarLenFeature(tf.int64),
        "object/mean_saliency": tf.io.VarLenFeature(tf.float32),
    }
    for key in MAP_KEYS:
        spec[f"{key}/encoded"] = tf.io.FixedLenFeature([], tf.string)
    return spec


def read_records(path) -> list[dict]:
    """Every record of one shard as numpy (uint8 maps (H, W, 1), image (H, W, 3)); for tests."""
    import tensorflow as tf  # lazy: the manifest reader imports this module without TF

    out = []
    for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        ex = tf.train.Example.FromString(raw).features.feature
        rec = {
            "image": decode_numpy(ex["image/encoded"].bytes_list.value[0], 3),
            "image_id": int(ex["image/id"].int64_list.value[0]),
            "file_name": ex["image/file_name"].bytes_list.value[0].decode(),
            "low_ann_id": int(ex["low/ann_id"].int64_list.value[0]),
            "high_ann_id": int(ex["high/ann_id"].int64_list.value[0]),
            "low_category_id": int(ex["low/category_id"].int64_list.value[0]),
            "high_category_id": int(ex["high/category_id"].int64_list.value[0]),
            "factors": list(ex["factors"].float_list.value),
            "object_ann_ids": list(ex["object/ann_ids"].int64_list.value),
            "object_mean_saliency": list(ex["object/mean_saliency"].float_list.value),
        }
        for key in MAP_KEYS:
            rec[key] = decode_numpy(ex[f"{key}/encoded"].bytes_list.value[0], 1)
        out.append(rec)
    return out
