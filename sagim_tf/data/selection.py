"""The SAM selection rule (paper §4.1): which COCO images enter the dataset.

The paper: "Every sampled image contains more than 2 objects, and each object covers 10%
to 70% of area of entire image, in order to obviate tiny or overwhelming ones."

Our exact reading (the default, ``require_all=False``):

- An *object* is a non-crowd instance annotation (``iscrowd == 0``) of the image; crowd
  regions are groups, not objects, and are ignored.
- An object's coverage is its annotation's ``area`` (COCO's pixel area of the
  segmentation) divided by ``width * height`` of its ``images`` entry.
- An object *qualifies* when ``min_fraction <= coverage <= max_fraction`` (10% and 70%,
  both inclusive).
- An image is selected when **more than two** objects qualify (``min_objects = 3``). The
  qualifying objects are the image's candidates for O_low and O_high; smaller and larger
  objects are ignored ("obviate tiny or overwhelming ones").

Why not the stricter reading (every object of the image must qualify)? Almost every COCO
photograph has some small annotated object, so that reading keeps only a few hundred
images, far from the paper's 15,686 of ~123k. ``require_all=True`` gives it anyway: then
all non-crowd objects must qualify, and there must be more than two of them.

Example:
    >>> rule = SelectionRule()
    >>> rule.qualifies(area=0.2 * 640 * 480, width=640, height=480)
    True
"""

from __future__ import annotations

from dataclasses import dataclass

from sagim_tf.utils.errors import ConfigError


@dataclass(frozen=True)
class SelectionRule:
    """The selection rule's parameters (defaults: the paper's numbers).

    Args:
        min_objects: the least number of qualifying objects (3: "more than 2").
        min_fraction: the smallest coverage an object may have (inclusive).
        max_fraction: the largest coverage an object may have (inclusive).
        require_all: the strict reading: every non-crowd object must qualify.
    """

    min_objects: int = 3
    min_fraction: float = 0.10
    max_fraction: float = 0.70
    require_all: bool = False

    def __post_init__(self):
        if self.min_objects < 2:
            raise ConfigError(f"selection: min_objects must be >= 2 (O_low and O_high), got {self.min_objects}")
        if not 0.0 <= self.min_fraction < self.max_fraction <= 1.0:
            raise ConfigError(
                f"selection: need 0 <= min_fraction < max_fraction <= 1, got "
                f"{self.min_fraction}, {self.max_fraction}"
            )

    def qualifies(self, area: float, width: int, height: int) -> bool:
        coverage = float(area) / float(width * height)
        return self.min_fraction <= coverage <= self.max_fraction

    def candidates(self, annotations, width: int, height: int) -> list[dict] | None:
        """The qualifying objects of one image, or None when the image is not selected."""
        objects = [a for a in annotations if not a.get("iscrowd", 0)]
        good = [a for a in objects if self.qualifies(a["area"], width, height)]
        if self.require_all and len(good) != len(objects):
            return None
        if len(good) < self.min_objects:
            return None
        return sorted(good, key=lambda a: a["id"])


def select_images(coco, rule: SelectionRule = SelectionRule()) -> dict[int, list[dict]]:
    """Image id -> its candidate annotations (sorted by id), for the images ``rule`` selects.

    ``coco`` is a :class:`pycocotools.coco.COCO` (anything with ``imgs`` and ``imgToAnns``).
    """
    chosen = {}
    for image_id in sorted(coco.imgs):
        info = coco.imgs[image_id]
        cands = rule.candidates(coco.imgToAnns.get(image_id, []), info["width"], info["height"])
        if cands is not None:
            chosen[image_id] = cands
    return chosen
