"""A synthetic box-supervised segmentation set that keeps what makes real photos hard.

Design (the rationale is in ``docs/synthetic-data.md`` and the book's data chapter):

* **Classes are shapes made of parts.** Six classes (person, car, plane, house, tree, bottle), each
  a fixed arrangement of 2-3 *appearance groups* (a person's head / torso and arms / legs), each
  group painted with its own texture drawn from one shared pool. Colour grouping therefore finds a
  part, not the object, and colour says nothing about the class.
* **Clutter.** The background is one to three textures from the same pool, with straight strong
  edges (a horizon, bars) and unlabelled distractor shapes made of the same part vocabulary
  (a lone disc is not a car). Objects touch and occlude each other (1-5 labelled objects); the
  box is the tight box of the *visible* pixels and the instance mask is exact.
* **Imaging.** Soft (blurred) boundaries, per-part shading, an illumination gradient over the
  image, sensor noise and a slight camera blur.
* ``difficulty`` in [0, 1] scales clutter, camouflage (a part painted with the background's own
  texture), boundary softness, illumination and noise together.

Every image is drawn from its own random stream, seeded by (seed, split, index), so a split's first
N images are the same whatever the split's size. Output is a real dataset on disk: COCO instance
JSON with RLE masks, JPEG images, and VOC-style palette PNGs, read back with :mod:`bbam_lite.data.coco`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from bbam_lite.data import textures
from bbam_lite.data.coco import encode_rle, mask_bbox
from bbam_lite.data.records import BoxDataset, DataError
from bbam_lite.data.registry import DatasetReader, annotation_splits, register_reader
from bbam_lite.utils.io import atomic_write_json, writing

#: Bump when the generator's output changes: the shipped detector records the version it saw.
GENERATOR_VERSION = 1

CLASSES = ("person", "car", "plane", "house", "tree", "bottle")
DIFFICULTY_LEVELS = {"easy": 0.2, "medium": 0.5, "hard": 0.8}
SUPERSAMPLE = 4
SPLIT_IDS = {"train": 1, "val": 2, "test": 3}


@dataclass(frozen=True)
class SynthSettings:
    """Everything that determines a synthetic dataset; the defaults are the embedded default set."""

    n_train: int = 800
    n_val: int = 200
    seed: int = 0
    size: int = 160
    difficulty: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.difficulty <= 1.0:
            raise ValueError(f"difficulty must be in [0, 1], got {self.difficulty}")
        if self.size < 64:
            raise ValueError(f"size must be at least 64 pixels, got {self.size}")
        if self.n_train < 0 or self.n_val < 0:
            raise ValueError("n_train and n_val must not be negative")


def parse_difficulty(value: str | float) -> float:
    """``easy`` / ``medium`` / ``hard`` or a number in [0, 1]."""
    if isinstance(value, str) and value.lower() in DIFFICULTY_LEVELS:
        return DIFFICULTY_LEVELS[value.lower()]
    try:
        d = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"difficulty must be easy, medium, hard or a number in [0, 1], got {value!r}"
        ) from None
    if not 0.0 <= d <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], got {d}")
    return d


# --------------------------------------------------------------------------------------------
# Shapes. Each class is a list of appearance groups; a group is a list of polygons in a unit frame
# (x to the right, y down, the object spanning roughly [-1, 1] vertically).


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 40) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def _bar(p: tuple[float, float], q: tuple[float, float], width: float) -> np.ndarray:
    """A thick segment from p to q."""
    p_, q_ = np.asarray(p, float), np.asarray(q, float)
    d = q_ - p_
    n = np.array([-d[1], d[0]]) / max(np.linalg.norm(d), 1e-9) * width / 2
    return np.array([p_ + n, q_ + n, q_ - n, p_ - n])


def _person(j) -> list[list[np.ndarray]]:
    head = [_ellipse(0, -0.78, 0.2 * j(), 0.22 * j())]
    torso_w = 0.32 * j()
    torso = [np.array([[-torso_w, -0.55], [torso_w, -0.55], [torso_w * 0.85, 0.1], [-torso_w * 0.85, 0.1]])]
    arm_a, arm_b = 0.25 + 0.5 * j(0.6), 0.25 + 0.5 * j(0.6)
    torso.append(_bar((-torso_w, -0.5), (-torso_w - 0.35 * arm_a, 0.05), 0.13))
    torso.append(_bar((torso_w, -0.5), (torso_w + 0.35 * arm_b, 0.05), 0.13))
    spread = 0.12 * j(0.8)
    legs = [_bar((-0.14, 0.05), (-0.14 - spread, 1.0), 0.17), _bar((0.14, 0.05), (0.14 + spread, 1.0), 0.17)]
    return [head, torso, legs]


def _car(j) -> list[list[np.ndarray]]:
    half = 1.5 * j()
    body = [_rect(-half, -0.15, half, 0.45)]
    cabin = [
        np.array([[-half * 0.55, -0.15], [-half * 0.35, -0.65], [half * 0.35, -0.65], [half * 0.6, -0.15]])
    ]
    wheels = [_ellipse(-half * 0.6, 0.45, 0.3, 0.3), _ellipse(half * 0.6, 0.45, 0.3, 0.3)]
    return [body + [], cabin, wheels]


def _plane(j) -> list[list[np.ndarray]]:
    half = 1.6 * j()
    fuselage = [
        _ellipse(0, 0, half, 0.2 * j()),
        np.array([[-half * 0.95, 0], [-half * 0.8, -0.7], [-half * 0.6, -0.7], [-half * 0.5, 0]]),
    ]
    sweep = 0.35 * j(0.6)
    wings = [
        np.array([[0.25, -0.05], [-0.1 - sweep, -0.95], [-0.35 - sweep, -0.95], [-0.3, -0.05]]),
        np.array([[0.25, 0.05], [-0.1 - sweep, 0.95], [-0.35 - sweep, 0.95], [-0.3, 0.05]]),
    ]
    return [fuselage, wings]


def _house(j) -> list[list[np.ndarray]]:
    w = 0.8 * j()
    walls = [_rect(-w, -0.2, w, 1.0)]
    roof = [
        np.array([[-w - 0.2, -0.15], [0.0, -1.0 * j(0.7)], [w + 0.2, -0.15]]),
        _rect(w * 0.45, -0.85, w * 0.7, -0.4),
    ]
    door = [_rect(-0.18, 0.45, 0.18, 1.0), _rect(w * 0.35, 0.05, w * 0.75, 0.35)]
    return [walls, roof, door]


def _tree(j) -> list[list[np.ndarray]]:
    r = 0.5 * j()
    crown = [
        _ellipse(0, -0.5, r + 0.1, r),
        _ellipse(-r * 0.7, -0.2, r * 0.8, r * 0.7),
        _ellipse(r * 0.7, -0.2, r * 0.8, r * 0.7),
    ]
    trunk = [_rect(-0.13, 0.0, 0.13, 1.0)]
    return [crown, trunk]


def _bottle(j) -> list[list[np.ndarray]]:
    w = 0.38 * j()
    body = [
        np.array(
            [
                [-w, 1.0],
                [-w, -0.2],
                [-0.13, -0.55],
                [-0.13, -0.85],
                [0.13, -0.85],
                [0.13, -0.55],
                [w, -0.2],
                [w, 1.0],
            ]
        )
    ]
    label = [_rect(-w, 0.1, w, 0.6)]
    cap = [_rect(-0.16, -1.0, 0.16, -0.82)]
    return [body, label, cap]


SHAPES = {"person": _person, "car": _car, "plane": _plane, "house": _house, "tree": _tree, "bottle": _bottle}


# Part vocabulary for distractors: single pieces that look like parts but are no object.
def _distractor(rng: np.random.Generator) -> np.ndarray:
    kind = rng.integers(4)
    if kind == 0:
        return _ellipse(0, 0, rng.uniform(0.3, 1), rng.uniform(0.3, 1))
    if kind == 1:
        return _rect(-rng.uniform(0.2, 1), -rng.uniform(0.2, 1), rng.uniform(0.2, 1), rng.uniform(0.2, 1))
    if kind == 2:
        n = int(rng.integers(3, 8))
        t = np.sort(rng.uniform(0, 2 * np.pi, n))
        r = rng.uniform(0.4, 1.0, n)
        return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    return _bar((-1, rng.uniform(-0.3, 0.3)), (1, rng.uniform(-0.3, 0.3)), rng.uniform(0.08, 0.3))


# --------------------------------------------------------------------------------------------
# Rendering.


def _transform(poly: np.ndarray, centre: np.ndarray, scale: float, angle: float, flip: bool) -> np.ndarray:
    p = poly.copy()
    if flip:
        p[:, 0] = -p[:, 0]
    c, s = math.cos(angle), math.sin(angle)
    p = p @ np.array([[c, s], [-s, c]])
    return p * scale + centre


def _coverage(polys: list[np.ndarray], size: int) -> np.ndarray:
    """Fraction of each pixel covered by the union of polygons (supersampled rasterisation)."""
    big = np.zeros((size * SUPERSAMPLE, size * SUPERSAMPLE), np.uint8)
    for p in polys:  # one call per polygon: a single fillPoly call XORs overlapping polygons
        cv2.fillPoly(
            big, [np.round(p * SUPERSAMPLE * 16).astype(np.int32)], 255, lineType=cv2.LINE_8, shift=4
        )
    return cv2.resize(big.astype(np.float32) / 255.0, (size, size), interpolation=cv2.INTER_AREA)


def _soften(alpha: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(alpha, (0, 0), sigma) if sigma > 0.05 else alpha


def _shade(tex: np.ndarray, alpha: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A linear shading ramp across the region, as if lit from one side."""
    ys, xs = np.nonzero(alpha > 0.01)
    if len(xs) == 0 or strength <= 0:
        return tex
    theta = rng.uniform(0, 2 * np.pi)
    h, w = alpha.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = np.cos(theta) * (xx - xs.mean()) + np.sin(theta) * (yy - ys.mean())
    extent = max(float(np.abs(u[ys, xs]).max()), 1.0)
    gain = 1.0 + strength * u / extent
    return tex * gain[..., None]


def _paint(canvas: np.ndarray, tex: np.ndarray, alpha: np.ndarray) -> None:
    canvas *= 1 - alpha[..., None]
    canvas += alpha[..., None] * tex


@dataclass
class _Scene:
    image: np.ndarray  # uint8 RGB
    masks: np.ndarray  # (N, H, W) bool, visible parts
    labels: np.ndarray  # (N,) 1..K


def render_scene(rng: np.random.Generator, size: int, difficulty: float) -> _Scene:
    """Draw one image with its labelled objects (see the module docstring for the design)."""
    d = difficulty
    canvas = textures.texture(size, rng).copy()
    bg_textures = [canvas.copy()]
    # Strong straight edges: a second background region behind a random line, and bars.
    if rng.random() < 0.4 + 0.5 * d:
        other = textures.texture(size, rng)
        bg_textures.append(other)
        theta = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        side = (np.cos(theta) * (xx - rng.uniform(0, size)) + np.sin(theta) * (yy - rng.uniform(0, size))) > 0
        _paint(canvas, other, _soften(side.astype(np.float32), 0.7))

    def place(
        shape_polys: list[np.ndarray], extent: float
    ) -> tuple[list[np.ndarray], np.ndarray, float, float, bool]:
        scale = extent / 2
        centre = rng.uniform([-0.1 * size, -0.1 * size], [1.1 * size, 1.1 * size])
        centre = np.clip(centre, scale * 0.3, size - scale * 0.3)
        angle = rng.normal(0, math.radians(6 + 14 * d))
        flip = bool(rng.random() < 0.5)
        return [_transform(p, centre, scale, angle, flip) for p in shape_polys], centre, scale, angle, flip

    # Unlabelled distractors behind the objects.
    n_distract = int(rng.poisson(1 + 5 * d))
    for _ in range(n_distract):
        extent = rng.uniform(0.08, 0.35) * size
        polys, *_ = place([_distractor(rng)], extent)
        alpha = _soften(_coverage(polys, size), 0.3 + d)
        _paint(canvas, _shade(textures.texture(size, rng), alpha, rng, 0.3 * d), alpha)

    n_objects = int(rng.choice([1, 2, 3, 4, 5], p=[0.28, 0.3, 0.22, 0.12, 0.08]))
    masks, labels = [], []
    max_extent = 0.75 if n_objects == 1 else 0.6
    for _ in range(60):  # placement attempts
        if len(labels) == n_objects:
            break
        cls = int(rng.integers(len(CLASSES)))
        groups = SHAPES[CLASSES[cls]](lambda spread=0.25: 1 + rng.uniform(-spread, spread) * 0.8)
        extent = rng.uniform(0.25, max_extent) * size
        all_polys = [p for g in groups for p in g]
        placed, centre, scale, angle, flip = place(all_polys, extent)
        full = _coverage(placed, size) >= 0.5
        if full.sum() < 0.004 * size * size:
            continue
        # Occlusion check: every earlier object keeps at least half its visible area.
        new_masks = [m & ~full for m in masks]
        if any(nm.sum() < 0.5 * m.sum() for nm, m in zip(new_masks, masks, strict=True)):
            continue
        # Paint group by group with textures from the shared pool; sometimes a group is camouflaged.
        start = 0
        light = rng.uniform(0, 0.25 + 0.35 * d)
        for g in groups:
            polys = placed[start : start + len(g)]
            start += len(g)
            if rng.random() < 0.1 + 0.3 * d:
                base = bg_textures[int(rng.integers(len(bg_textures)))]
                tex = np.clip(
                    np.roll(base, int(rng.integers(-size // 8, size // 8)), axis=1) + rng.uniform(-0.1, 0.1),
                    0,
                    1,
                )
            else:
                tex = textures.texture(size, rng)
            alpha = _soften(_coverage(polys, size), 0.3 + 1.4 * d)
            _paint(canvas, _shade(tex, alpha, rng, light), alpha)
        masks = new_masks + [full]
        labels.append(cls + 1)

    # Occluding distractors in front, at higher difficulty.
    for _ in range(int(rng.random() < 0.5 * d)):
        extent = rng.uniform(0.08, 0.2) * size
        polys, *_ = place([_distractor(rng)], extent)
        hard = _coverage(polys, size) >= 0.5
        trial = [m & ~hard for m in masks]
        if any(t.sum() < 0.6 * m.sum() for t, m in zip(trial, masks, strict=True)):
            continue
        masks = trial
        alpha = _soften(_coverage(polys, size), 0.3 + d)
        _paint(canvas, textures.texture(size, rng), alpha)

    # Imaging: illumination gradient, camera blur, noise.
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    theta = rng.uniform(0, 2 * np.pi)
    gain = 1 + rng.uniform(0.1, 0.2 + 0.5 * d) * (np.cos(theta) * (xx - 0.5) + np.sin(theta) * (yy - 0.5)) * 2
    canvas *= gain[..., None]
    canvas = cv2.GaussianBlur(canvas, (0, 0), 0.4 + 0.4 * d)
    canvas += rng.normal(0, 0.01 + 0.04 * d, canvas.shape).astype(np.float32)
    image = (np.clip(canvas, 0, 1) * 255 + 0.5).astype(np.uint8)

    keep = [i for i, m in enumerate(masks) if m.sum() >= 16]
    return _Scene(
        image,
        np.array([masks[i] for i in keep], bool).reshape(-1, size, size),
        np.array([labels[i] for i in keep], np.int64),
    )


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of one image: independent of the split's size and of other images."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLIT_IDS[split], index]))


# --------------------------------------------------------------------------------------------
# Writing a dataset.


def _write_png(path: Path, index_map: np.ndarray, palette: list[int]) -> None:
    im = Image.fromarray(index_map.astype(np.uint8), mode="P")
    im.putpalette(palette)
    im.save(path, optimize=False)


def write_split(out: Path, split: str, n: int, settings: SynthSettings, progress: bool = True) -> dict:
    """Render and write one split; returns its COCO dict. Files land in ``out`` (a fresh folder)."""
    from tqdm import tqdm

    from bbam_lite.data.voc import voc_palette

    palette = voc_palette()
    img_dir, cls_dir, obj_dir = (
        out / "images" / split,
        out / "SegmentationClass" / split,
        out / "SegmentationObject" / split,
    )
    for d_ in (img_dir, cls_dir, obj_dir):
        d_.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    pixel_sum, pixel_count = np.zeros(3), 0
    for i in tqdm(range(n), desc=f"synth {split}", unit="img", disable=not progress, leave=False):
        scene = render_scene(image_rng(settings.seed, split, i), settings.size, settings.difficulty)
        name = f"{i:06d}"
        Image.fromarray(scene.image).save(img_dir / f"{name}.jpg", quality=95)
        pixel_sum += scene.image.reshape(-1, 3).sum(axis=0)
        pixel_count += scene.image.shape[0] * scene.image.shape[1]
        cls_map = np.zeros((settings.size, settings.size), np.uint8)
        obj_map = np.zeros_like(cls_map)
        image_id = i + 1
        images.append(
            {"id": image_id, "file_name": f"{name}.jpg", "width": settings.size, "height": settings.size}
        )
        for k, (mask, label) in enumerate(zip(scene.masks, scene.labels, strict=True)):
            cls_map[mask] = label
            obj_map[mask] = k + 1
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": mask_bbox(mask),
                    "area": float(mask.sum()),
                    "iscrowd": 0,
                    "segmentation": encode_rle(mask),
                }
            )
        _write_png(cls_dir / f"{name}.png", cls_map, palette)
        _write_png(obj_dir / f"{name}.png", obj_map, palette)
    coco = {
        "info": {
            "description": "bbam-lite synthetic",
            "generator_version": GENERATOR_VERSION,
            **asdict(settings),
        },
        "images": images,
        "annotations": anns,
        "categories": [{"id": i + 1, "name": c, "supercategory": "synthetic"} for i, c in enumerate(CLASSES)],
    }
    (out / "annotations").mkdir(exist_ok=True)
    atomic_write_json(out / "annotations" / f"{split}.json", coco)
    mean = (pixel_sum / max(pixel_count, 1) / 255.0).tolist()
    return {"images": len(images), "objects": len(anns), "mean_rgb": mean}


def synthesize(out: Path, settings: SynthSettings = SynthSettings(), progress: bool = True) -> Path:
    """Write the dataset to ``out``; built in a temporary sibling folder and renamed when complete."""
    out = Path(out)
    if (out / "dataset.json").exists():
        raise FileExistsError(f"{out}: a dataset is already there (delete it or choose another --out)")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: folder exists and is not empty")
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    with writing(out):  # a read-only or full disk: one line naming out
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        stats = {}
        try:
            for split, n in (("train", settings.n_train), ("val", settings.n_val)):
                stats[split] = write_split(tmp, split, n, settings, progress)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        meta = {
            "generator_version": GENERATOR_VERSION,
            "settings": asdict(settings),
            "class_names": ["background", *CLASSES],
            "mean_rgb": stats["train"]["mean_rgb"] if settings.n_train else stats["val"]["mean_rgb"],
            "splits": {k: {"images": v["images"], "objects": v["objects"]} for k, v in stats.items()},
        }
        atomic_write_json(tmp / "dataset.json", meta)
        if out.exists():
            out.rmdir()
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)
    return out


def read_metadata(root: Path) -> dict:
    path = Path(root) / "dataset.json"
    if not path.is_file():
        raise DataError(f"{root}: not a bbam-lite synthetic dataset (no dataset.json)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def ensure_synthetic(root: Path, settings: SynthSettings = SynthSettings(), progress: bool = True) -> Path:
    """The dataset at ``root``, generated if absent; refuses a folder made with other settings."""
    root = Path(root)
    if (root / "dataset.json").exists():
        meta = read_metadata(root)
        if meta.get("settings") != asdict(settings) or meta.get("generator_version") != GENERATOR_VERSION:
            raise DataError(
                f"{root}: holds a synthetic dataset made with other settings "
                f"({meta.get('settings')}, generator v{meta.get('generator_version')}); "
                f"wanted {asdict(settings)}, generator v{GENERATOR_VERSION}"
            )
        return root
    return synthesize(root, settings, progress)


def read_synthetic(root: Path, split: str = "train") -> BoxDataset:
    """Read a generated dataset back through the COCO reader."""
    from bbam_lite.data.coco import read_coco

    root = Path(root)
    read_metadata(root)
    return read_coco(
        root / "annotations" / f"{split}.json", root / "images" / split, name=f"synthetic-{split}"
    )


def _synthetic_split_files(root: Path, split: str) -> list[Path]:
    return [Path(root) / "annotations" / f"{split}.json"]


register_reader(
    DatasetReader(
        name="synthetic",
        read=read_synthetic,
        split_files=_synthetic_split_files,
        available_splits=annotation_splits,
        detect=lambda root: (root / "dataset.json").exists(),
        detected_by="DATA/dataset.json exists",
        order=10,
    )
)
