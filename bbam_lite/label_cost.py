"""What labels cost to make, as the papers report it (chapter 1 of the book).

BBAM's introduction quotes three annotation times per image; with them, the hours a dataset's
labels take follow from its size. These are the papers' figures, not measurements of ours.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LabelCost:
    """Seconds of annotator time per image for one kind of label, and where the figure comes from."""

    kind: str
    seconds_per_image: float
    source: str


LABEL_COSTS: tuple[LabelCost, ...] = (
    LabelCost("image-level tags", 20.0, "Bearman et al., ECCV 2016 (BBAM ref. [4])"),
    LabelCost("bounding boxes", 38.1, "Bellver et al., CVPR Workshops 2019 (BBAM ref. [5])"),
    LabelCost(
        "pixel-level masks",
        240.0,
        "Bearman et al., ECCV 2016: about 4 minutes for an image with 2.8 objects on average",
    ),
)

#: Training-set sizes the papers train on (images).
DATASET_IMAGES: dict[str, int] = {
    "PASCAL VOC 2012 train_aug": 10_582,
    "COCO 2017 train": 118_287,
}


def annotation_hours(n_images: int, costs: tuple[LabelCost, ...] = LABEL_COSTS) -> dict[str, float]:
    """Annotator hours to label ``n_images`` images with each kind of label."""
    if n_images < 0:
        raise ValueError(f"n_images must be >= 0, got {n_images}")
    return {c.kind: n_images * c.seconds_per_image / 3600.0 for c in costs}
