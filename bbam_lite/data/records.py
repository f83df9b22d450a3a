"""The one record every reader yields, and the checks every reader shares.

A reader (COCO, VOC, synthetic) turns its files into a :class:`BoxDataset`: a list of
:class:`ImageRecord` (boxes, contiguous class ids, optional instance masks loaded on demand) and
the class names. Everything downstream (detector training, BBAM, baselines, metrics) sees only
this, so real and synthetic data share one code path.

Bad input policy, the same for every reader:

* a missing data root, annotation file, image file, or an unreadable / truncated image:
  :class:`DataError`, one line naming the file and the problem;
* an unknown class id, a NaN coordinate, duplicate image ids, a mask whose size differs from its
  image: :class:`DataError`;
* a box partly outside its image: clipped to the image, counted;
* a box of zero area (before or after clipping), or wholly outside its image: dropped, counted;
* an image left without objects: skipped, counted;
* grayscale, 16-bit or RGBA images: converted to 8-bit RGB when loaded.

The counts are reported in one :class:`DataWarning` per dataset, not one per item, naming the
first few items of each (annotation ids, files). A bad box's error names its file, its annotation
and the box as the file writes it.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

#: Images larger than this many pixels are refused (PIL's decompression-bomb guard, made explicit).
MAX_IMAGE_PIXELS = 64_000_000


class DataError(ValueError):
    """A data problem, reported in one line that names the file and the item."""


class DataWarning(UserWarning):
    """Items a reader skipped or repaired, with counts."""


@dataclass
class ImageRecord:
    """One image with its boxes (x1, y1, x2, y2 in pixels), class ids (1..K) and optional masks."""

    image_id: int
    path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    mask_loader: Callable[[], np.ndarray] | None = field(default=None, repr=False, compare=False)

    @property
    def has_masks(self) -> bool:
        return self.mask_loader is not None

    def load_image(self) -> np.ndarray:
        """The image as uint8 RGB (H, W, 3), checked against the recorded size."""
        image = load_rgb(self.path)
        if image.shape[:2] != (self.height, self.width):
            raise DataError(
                f"{self.path}: image is {image.shape[1]}x{image.shape[0]} but the annotations say "
                f"{self.width}x{self.height}"
            )
        return image

    def load_masks(self) -> np.ndarray | None:
        """Instance masks (N, H, W) bool in the order of ``boxes``, or None when there are none."""
        if self.mask_loader is None:
            return None
        masks = np.asarray(self.mask_loader(), dtype=bool)
        if masks.shape != (len(self.boxes), self.height, self.width):
            raise DataError(
                f"{self.path}: masks have shape {masks.shape}, expected "
                f"({len(self.boxes)}, {self.height}, {self.width})"
            )
        return masks


@dataclass
class BoxDataset:
    """Records plus class names; ``class_names[0]`` is ``"background"``."""

    records: list[ImageRecord]
    class_names: list[str]
    name: str = "dataset"
    root: Path | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> ImageRecord:
        return self.records[i]

    def __iter__(self) -> Iterator[ImageRecord]:
        return iter(self.records)

    @property
    def num_classes(self) -> int:
        """Object classes, background excluded."""
        return len(self.class_names) - 1

    def subset(self, indices: Sequence[int]) -> BoxDataset:
        return BoxDataset([self.records[i] for i in indices], self.class_names, self.name, self.root)


def check_not_empty(dataset: BoxDataset, what: str) -> BoxDataset:
    """``dataset``, or a one-line :class:`DataError` naming it when it has no images; ``what`` says
    what the images were for and how they were chosen, e.g. ``"to train on (--train-split train)"``."""
    if len(dataset) == 0:
        raise DataError(f"{dataset.name} ({dataset.root}) has no images {what}")
    return dataset


def load_rgb(path: Path) -> np.ndarray:
    """Read an image file as uint8 RGB, converting grayscale, 16-bit, palette and RGBA images.

    Raises :class:`DataError` for a missing, empty, truncated, corrupt or oversized file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: image file is empty (0 bytes)")
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise DataError(
                    f"{path}: image is {im.width}x{im.height}, larger than the limit of "
                    f"{MAX_IMAGE_PIXELS} pixels"
                )
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16-bit grey (Pillow opens some 16-bit PNGs as "I"): scale the 16-bit range to 8 bits,
                # the same for every image, so that brightness keeps its meaning across a dataset
                arr = np.asarray(im, dtype=np.float64)
                if arr.size and (arr.min() < 0 or arr.max() > 65535):
                    raise DataError(f"{path}: {im.mode} image with values outside the 16-bit range")
                arr = np.round(arr / 257.0).astype(np.uint8)
                return np.repeat(arr[..., None], 3, axis=2)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()  # alpha is dropped
    except DataError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow refuses to open images over twice its own limit
        raise DataError(
            f"{path}: image is larger than the limit of {MAX_IMAGE_PIXELS} pixels ({exc})"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from None


class ItemTally:
    """Counts repairs and skips while a reader runs, then warns once with the totals and the first
    :attr:`SHOWN` items of each (``"3 boxes clipped to the image (annotation 4, annotation 9 and 1
    more)"``)."""

    SHOWN = 5

    def __init__(self, source: str) -> None:
        self.source = source
        self.counts: Counter[str] = Counter()
        self.items: dict[str, list[str]] = {}

    def add(self, what: str, n: int = 1, items: Sequence[str] = ()) -> None:
        """Count ``n`` items of kind ``what``; ``items`` names them (the first few are kept)."""
        if n:  # a zero count must not create an entry: it would make a clean dataset warn
            self.counts[what] += n
            named = self.items.setdefault(what, [])
            named.extend(list(items)[: max(0, self.SHOWN - len(named))])

    def warn(self) -> None:
        if not self.counts:
            return
        parts = []
        for what, n in sorted(self.counts.items()):
            named = self.items.get(what, [])
            more = f" and {n - len(named)} more" if named and n > len(named) else ""
            parts.append(f"{n} {what}" + (f" ({', '.join(named)}{more})" if named else ""))
        warnings.warn(f"{self.source}: {'; '.join(parts)}", DataWarning, stacklevel=3)


def clean_boxes(
    boxes: np.ndarray,
    width: int,
    height: int,
    where: str,
    tally: ItemTally,
    names: Sequence[str] | None = None,
    written: Sequence[str] | None = None,
    in_file: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Clip boxes to the image and drop empty ones.

    Returns the cleaned (M, 4) float32 boxes and the indices of the input boxes kept. NaN or
    infinite coordinates and boxes with x2 < x1 or y2 < y1 raise :class:`DataError` naming
    ``where`` (the file), ``names[i]`` (the annotation, e.g. ``"annotation 7"``; default ``"box
    i"``) and ``written[i]`` (the box as the file writes it; default the corners). Clipped and
    dropped boxes are counted in ``tally`` under their names, followed by ``of IN_FILE`` when the
    tally's source is not the file that holds them.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    names = list(names) if names is not None else [f"box {i}" for i in range(len(boxes))]
    written = list(written) if written is not None else [str(b.tolist()) for b in boxes]

    def fail(bad: np.ndarray, problem: str) -> None:
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where}: {names[i]} has {problem}: {written[i]}")

    if not np.all(np.isfinite(boxes)):
        fail(~np.isfinite(boxes).all(axis=1), "a NaN or infinite coordinate")
    inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if inverted.any():
        fail(inverted, "a negative width or height")
    clipped = boxes.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, width)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, height)
    clipped32 = clipped.astype(np.float32)  # judge the area on what is returned: float32 can round it to 0
    nonempty = (clipped32[:, 2] > clipped32[:, 0]) & (clipped32[:, 3] > clipped32[:, 1])
    outside = nonempty & np.any(clipped != boxes, axis=1)
    suffix = f" of {in_file}" if in_file else ""
    for what, mask in (
        ("boxes clipped to the image", outside),
        ("empty or out-of-image boxes dropped", ~nonempty),
    ):
        tally.add(what, int(mask.sum()), [names[i] + suffix for i in np.flatnonzero(mask)])
    keep = np.flatnonzero(nonempty)
    return clipped32[keep], keep


def check_data_root(root: Path, what: str) -> Path:
    """Fail with one line when a data root does not exist or is not a folder."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root}: {what} data root does not exist")
    if not root.is_dir():
        raise DataError(f"{root}: {what} data root is not a folder")
    return root


def check_unique_ids(ids: Sequence[int], source: str) -> None:
    dup = [i for i, n in Counter(ids).items() if n > 1]
    if dup:
        raise DataError(f"{source}: duplicate image id {dup[0]} ({len(dup)} duplicated ids)")
