"""A synthetic, COCO-format instance dataset, for tests and demos where MS-COCO is absent.

Each scene is a JPEG with a textured background and 3 to 6 objects of varied shape,
colour, contrast, texture and size. Objects are painted in order, so later ones occlude
earlier ones; each annotation describes the *visible* part of its object, as COCO's do.
``instances.json`` follows the COCO instances format (``images``, ``annotations``,
``categories``) and is read by :class:`pycocotools.coco.COCO` like the real one:

- segmentations are polygons (most objects) or compressed RLE (objects whose visible part
  has several pieces or holes, and a seeded share of the others), all with ``iscrowd = 0``;
- ``area`` is the pixel area of the segmentation as pycocotools rasterises it, and
  ``bbox`` is ``[x, y, w, h]`` of that same mask, so the file is self-consistent.

Object sizes are drawn so that some scenes satisfy the SAM selection rule (several
objects covering 10%-70% of the image) and others do not (tiny or huge objects, or too
few of the right size), which is what the builder's tests need.

The output depends only on the arguments: the same seed gives the same bytes.

Example:
    >>> from sagim_tf.data.synth_coco import generate_synthetic_coco
    >>> ann = generate_synthetic_coco("/tmp/synth", num_images=8, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import os

import cv2
import numpy as np
from tqdm.auto import tqdm

from sagim_tf.data.photo_textures import cast_shadow, defocus, texture
from sagim_tf.utils.errors import ConfigError
from sagim_tf.utils.extras import missing_extra

try:  # the `coco` extra: scenes are annotated with COCO polygons and RLE masks
    from pycocotools import mask as mask_utils
except ModuleNotFoundError as exc:
    raise missing_extra(exc, "sagim_tf.data.synth_coco", "coco") from exc
from sagim_tf.utils.io import atomic_write, write_json

CATEGORIES = (
    {"id": 1, "name": "disc", "supercategory": "shape"},
    {"id": 2, "name": "box", "supercategory": "shape"},
    {"id": 3, "name": "triangle", "supercategory": "shape"},
    {"id": 4, "name": "star", "supercategory": "shape"},
    {"id": 5, "name": "blob", "supercategory": "shape"},
)

#: Scene styles: ``shapes`` paints gradients, stripes and checkers (fast, far from photos);
#: ``photo`` paints backgrounds and objects with photographic textures
#: (:mod:`sagim_tf.data.photo_textures`), with drop shadows, soft edges and mild defocus.
STYLES = ("shapes", "photo")
IMAGE_DIR = "images"
ANNOTATION_FILE = "instances.json"


def _background(rng, h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0 = rng.uniform(0.15, 0.85, 3)
    c1 = np.clip(c0 + rng.uniform(-0.3, 0.3, 3), 0, 1)
    angle = rng.uniform(0, np.pi)
    t = (np.cos(angle) * xx / w + np.sin(angle) * yy / h + 1) / 2
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    kind = rng.integers(0, 3)
    amp = rng.uniform(0.03, 0.12)
    if kind == 0:  # stripes
        period = rng.uniform(6, 24)
        a2 = rng.uniform(0, np.pi)
        img += amp * np.sin(2 * np.pi * (np.cos(a2) * xx + np.sin(a2) * yy) / period)[..., None]
    elif kind == 1:  # checker
        cell = int(rng.integers(6, 20))
        img += amp * (((xx // cell + yy // cell) % 2) * 2 - 1)[..., None]
    else:  # smooth noise
        noise = rng.normal(0, 1, (max(2, h // 8), max(2, w // 8), 3)).astype(np.float32)
        img += amp * cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 0.015, img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


def _shape_mask(rng, h, w, category, frac):
    """A binary mask of one shape whose area is roughly ``frac`` of the image."""
    target = frac * h * w
    cx, cy = rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h
    angle = rng.uniform(0, 360)
    m = np.zeros((h, w), np.uint8)
    aspect = rng.uniform(0.6, 1.6)
    if category == 1:  # ellipse: area = pi a b
        a = np.sqrt(target * aspect / np.pi)
        b = target / (np.pi * a)
        cv2.ellipse(m, (int(cx), int(cy)), (max(1, int(a)), max(1, int(b))), angle, 0, 360, 1, -1)
        return m
    if category == 2:  # rotated rectangle
        a = np.sqrt(target * aspect)
        b = target / a
        pts = cv2.boxPoints(((cx, cy), (a, b), angle))
    elif category == 3:  # triangle, area = 0.5 * base * height
        r = np.sqrt(target / 1.3)
        th = np.deg2rad(angle) + np.array([0, 2.1, 4.2]) + rng.uniform(-0.3, 0.3, 3)
        pts = np.stack([cx + r * np.cos(th), cy + aspect * r * np.sin(th)], 1)
    elif category == 4:  # star
        n = int(rng.integers(5, 8))
        r_out = np.sqrt(target / (n * 0.38))
        th = np.deg2rad(angle) + np.arange(2 * n) * np.pi / n
        rad = np.where(np.arange(2 * n) % 2 == 0, r_out, r_out * 0.5)
        pts = np.stack([cx + rad * np.cos(th), cy + rad * np.sin(th)], 1)
    else:  # irregular blob: a jittered polygon
        n = int(rng.integers(7, 12))
        th = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = np.sqrt(target / np.pi) * rng.uniform(0.7, 1.3, n)
        pts = np.stack([cx + rad * np.cos(th), cy + aspect * rad * np.sin(th)], 1)
    cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
    return m


def _texture(rng, h, w, base_colour, background_mean):
    """An object's appearance: a colour at a drawn contrast, with an optional texture."""
    contrast = rng.choice(["low", "mid", "high"], p=[0.3, 0.4, 0.3])
    if contrast == "low":
        colour = np.clip(background_mean + rng.uniform(-0.12, 0.12, 3), 0, 1)
    elif contrast == "mid":
        colour = np.clip(0.5 * base_colour + 0.5 * background_mean + rng.uniform(-0.2, 0.2, 3), 0, 1)
    else:
        colour = base_colour
    tex = np.ones((h, w, 3), np.float32) * colour[None, None]
    kind = rng.integers(0, 4)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    amp = rng.uniform(0.05, 0.2)
    if kind == 1:
        period = rng.uniform(4, 12)
        tex += amp * np.sign(np.sin(2 * np.pi * (xx + yy * rng.uniform(-1, 1)) / period))[..., None]
    elif kind == 2:
        tex += rng.normal(0, amp / 2, (h, w, 1))
    elif kind == 3:
        ring = np.sin(np.hypot(xx - w / 2, yy - h / 2) / rng.uniform(2, 6))
        tex += amp * ring[..., None] * rng.uniform(-1, 1, 3)[None, None]
    return np.clip(tex, 0, 1)


def _luma(x):
    return x @ np.array([0.299, 0.587, 0.114], np.float32)


def _photo_object(rng, h, w, background_mean):
    """An object's appearance in the photo style: a photographic texture at a drawn contrast.

    Low contrast moves the texture's mean colour to the background's, so only its texture
    sets it apart; high contrast tints it with a saturated colour; mid keeps it as cut.
    """
    tex = texture(rng, h, w)
    contrast = rng.choice(["low", "mid", "high"], p=[0.3, 0.4, 0.3])
    if contrast == "low":
        tex = tex - tex.reshape(-1, 3).mean(0) + background_mean
    elif contrast == "high":
        tint = rng.uniform(0.0, 1.0, 3).astype(np.float32)
        tex = 0.45 * tex + 0.55 * tint * (0.5 + _luma(tex)[..., None])
    return np.clip(tex, 0, 1).astype(np.float32)


def _draw_fraction(rng):
    """Object size as a fraction of the image: mostly 10%-45%, sometimes tiny or huge."""
    u = rng.uniform()
    if u < 0.15:
        return rng.uniform(0.01, 0.06)
    if u < 0.22:
        return rng.uniform(0.6, 0.85)
    return rng.uniform(0.12, 0.4)


def _mask_to_segmentation(rng, mask, rle_share):
    """Polygons for a single-piece mask without holes (usually), compressed RLE otherwise."""
    h, w = mask.shape
    contours, hierarchy = cv2.findContours(mask.copy(), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    polys = [c.reshape(-1, 2) for c in contours if len(c) >= 3]
    has_holes = hierarchy is not None and (hierarchy[0][:, 3] >= 0).any()
    if polys and not has_holes and len(polys) == 1 and rng.uniform() >= rle_share:
        seg = [[float(v) for v in p.astype(np.float64).ravel()] for p in polys]
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        if mask_utils.area(rle) > 0:
            return seg, rle
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    seg = {"size": [int(h), int(w)], "counts": rle["counts"].decode("ascii")}
    return seg, rle


def synthesize_scene(rng, width, height, min_objects=3, max_objects=6, rle_share=0.25,
                     style="shapes"):
    """One scene: (uint8 RGB image (H, W, 3), list of (category_id, segmentation, rle))."""
    photo = style == "photo"
    img = texture(rng, height, width) if photo else _background(rng, height, width)
    bg_mean = img.reshape(-1, 3).mean(0)
    n = int(rng.integers(min_objects, max_objects + 1))
    owner = np.full((height, width), -1, np.int32)
    cats = []
    for k in range(n):
        category = int(rng.integers(1, len(CATEGORIES) + 1))
        m = _shape_mask(rng, height, width, category, _draw_fraction(rng)).astype(bool)
        if photo:
            tex = _photo_object(rng, height, width, bg_mean)
            img = cast_shadow(rng, img, m.astype(np.float32))
            # a soft, anti-aliased edge (about a pixel) as a lens draws it; the
            # annotation keeps the hard mask
            alpha = cv2.GaussianBlur(m.astype(np.float32), (0, 0), 0.7)[..., None]
            img = img * (1.0 - alpha) + tex * alpha
        else:
            tex = _texture(rng, height, width, rng.uniform(0, 1, 3), bg_mean)
            img[m] = tex[m]
        owner[m] = k
        cats.append(category)
    if photo:  # the whole frame through one lens: mild defocus and sensor noise
        img = defocus(rng, np.ascontiguousarray(img, np.float32), 0.8)
        img = img + rng.normal(0, 0.008, img.shape).astype(np.float32)
    objects = []
    for k, category in enumerate(cats):
        visible = (owner == k).astype(np.uint8)
        if visible.sum() < max(4, 0.002 * width * height):
            continue  # fully (or nearly) hidden: not annotated, as in COCO
        seg, rle = _mask_to_segmentation(rng, visible, rle_share)
        objects.append((category, seg, rle))
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), objects


def generate_synthetic_coco(out_dir, num_images: int, seed: int = 0, size=(320, 240),
                            min_objects: int = 3, max_objects: int = 6, quality: int = 90,
                            progress: bool = False, style: str = "shapes") -> str:
    """Write ``num_images`` scenes and their ``instances.json`` under ``out_dir``.

    Args:
        out_dir: output folder; images go to ``out_dir/images``, annotations to
            ``out_dir/instances.json``.
        num_images: how many scenes (>= 1).
        seed: the seed; scene ``i`` uses ``numpy.random.default_rng([seed, i])``.
        size: (width, height) of every scene.
        min_objects, max_objects: objects painted per scene (before occlusion).
        quality: JPEG quality.
        progress: show a tqdm progress bar.
        style: ``"shapes"`` (flat colours, stripes, checkers) or ``"photo"`` (photographic
            textures, shadows, defocus; see :data:`STYLES`).

    Returns:
        The path of ``instances.json``.
    """
    if style not in STYLES:
        raise ConfigError(f"unknown scene style {style!r}; known: {', '.join(STYLES)}")
    if int(num_images) < 1:
        raise ConfigError(f"--images must be at least 1, got {num_images}")
    width, height = (int(v) for v in size)
    if width < 16 or height < 16:
        raise ConfigError(f"size must be at least 16x16, got {width}x{height}")
    if not 1 <= min_objects <= max_objects:
        raise ConfigError(f"need 1 <= min_objects <= max_objects, got {min_objects}, {max_objects}")

    img_dir = os.path.join(out_dir, IMAGE_DIR)
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    ann_id = 1
    for i in tqdm(range(int(num_images)), desc="synth-coco", unit="img", disable=not progress):
        rng = np.random.default_rng([int(seed), i])
        pixels, objects = synthesize_scene(rng, width, height, min_objects, max_objects,
                                           style=style)
        image_id = i + 1
        file_name = f"synth_{image_id:06d}.jpg"
        ok, buf = cv2.imencode(".jpg", pixels[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:  # pragma: no cover
            raise RuntimeError("JPEG encoding failed")
        data = buf.tobytes()

        def _write(tmp, data=data):
            with open(tmp, "wb") as f:
                f.write(data)

        atomic_write(os.path.join(img_dir, file_name), _write)
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for category, seg, rle in objects:
            annotations.append({
                "id": ann_id,
                "image_id": image_id,
                "category_id": category,
                "segmentation": seg,
                "area": float(mask_utils.area(rle)),
                "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                "iscrowd": 0,
            })
            ann_id += 1
    doc = {
        "info": {"description": "sagim_tf synthetic COCO-format scenes", "version": "1.0",
                 "seed": int(seed), "style": style},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": list(CATEGORIES),
    }
    return write_json(os.path.join(out_dir, ANNOTATION_FILE), doc, indent=None, sort_keys=True)
