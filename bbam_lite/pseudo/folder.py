"""A labels folder: the one place that knows its layout and handles its faults.

Layout of a labels folder ``LABELS``::

    settings.json           what the labels were made with; a rerun with other settings is refused
    identity.json           the dataset split and images labelled (:mod:`bbam_lite.pseudo.identity`)
    images/<image_id>.npz   one finished image (instances, masks, per-object info), written last
    semantic/<name>.png     VOC-style class map, 255 = ignore
    bbam/<image_id>.npz     the method's maps (float16; BBAM), for reuse by analyses and --maps-from
    instances.json          COCO instances with RLE masks and ``ignore`` RLEs (written at the end)
    quality.json            miou, mean_instance_iou, ignore fraction, counts (when masks exist)
    ranks/<r>-of-<N>.json   what each process did (several processes only)

Every file is written atomically (a temporary name renamed into place), so a killed run leaves no
half-written file under a final name, and its bytes depend on its content only (no time stamps).
An image is finished when its ``images/<id>.npz`` is readable; a rerun reads every per-image file
of the finished images (result, class map, maps), and one that is damaged (truncated, not a zip,
not a PNG) or missing is reported in one line naming it and that image is labelled again. A write
that fails (a full disk) raises :class:`LabelsFolderError` naming the folder and the file.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bbam_lite.data.records import ImageRecord
from bbam_lite.pseudo.labels import InstanceLabel
from bbam_lite.pseudo.writers import read_semantic_png, write_coco_json, write_semantic_png
from bbam_lite.utils.io import atomic_save, atomic_write_json, writing
from bbam_lite.utils.run_folder import check_run_settings

#: What a damaged numpy archive raises on reading.
_UNREADABLE = (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError)


#: quality.json fields that describe a run (its time, how many images it did), not its labels
RUN_FACTS = ("seconds_this_run", "images_this_run")


def label_bytes(folder: Path) -> dict[str, bytes]:
    """Every file of a labels folder by relative path, ``quality.json`` without its
    :data:`RUN_FACTS`: two folders with equal label bytes hold the same labels (how
    ``--workers`` and resumed runs are checked against an uninterrupted one-worker run)."""
    out = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name == "quality.json":
                q = {k: v for k, v in json.loads(data).items() if k not in RUN_FACTS}
                data = json.dumps(q, indent=2).encode()
            out[str(path.relative_to(folder))] = data
    return out


class LabelsFolderError(ValueError):
    """A labels folder that cannot be read or written (one line: which folder, which file)."""


class LabelsFolderWarning(UserWarning):
    """A damaged per-image file that is being recomputed."""


@dataclass
class ImageLabels:
    """One image's labels as a method makes them: instances, per-object info and stored maps."""

    instances: list[InstanceLabel]
    info: list[dict]
    maps: dict[str, np.ndarray] = field(default_factory=dict)


class LabelsFolder:
    """Paths, reads and writes of one labels folder (see the module docstring for the layout)."""

    SETTINGS = "settings.json"
    IMAGES = "images"
    MAPS = "bbam"  # the folder name of the first method that stored maps, kept for existing runs
    SEMANTIC = "semantic"
    INSTANCES = "instances.json"
    QUALITY = "quality.json"
    RANKS = "ranks"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LabelsFolder({str(self.root)!r})"

    # ------------------------------------------------------------------------------- paths
    def result_path(self, image_id: int) -> Path:
        return self.root / self.IMAGES / f"{image_id}.npz"

    def maps_path(self, image_id: int) -> Path:
        return self.root / self.MAPS / f"{image_id}.npz"

    def semantic_path(self, rec: ImageRecord) -> Path:
        return self.root / self.SEMANTIC / f"{rec.path.stem}.png"

    @property
    def settings_path(self) -> Path:
        return self.root / self.SETTINGS

    @property
    def instances_path(self) -> Path:
        return self.root / self.INSTANCES

    @property
    def quality_path(self) -> Path:
        return self.root / self.QUALITY

    def rank_path(self, rank: int, world_size: int) -> Path:
        return self.root / self.RANKS / f"{rank}-of-{world_size}.json"

    # ---------------------------------------------------------------------------- settings
    def check_settings(self, run_settings: dict) -> None:
        """Record ``run_settings`` in a fresh folder; refuse a folder made with other settings."""
        self._writing(self.settings_path, lambda: check_run_settings(self.root, run_settings))

    def settings(self) -> dict:
        """The folder's ``settings.json`` (what it was made with)."""
        path = self.settings_path
        if not path.is_file():
            raise LabelsFolderError(f"{path}: not a labels folder (no {self.SETTINGS})")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise LabelsFolderError(f"{path}: unreadable settings ({e})") from None

    def label_settings(self):
        """The folder's :class:`~bbam_lite.pseudo.settings.PseudoLabelSettings`."""
        from bbam_lite.pseudo.settings import PseudoLabelSettings

        src = self.settings()
        try:
            return PseudoLabelSettings(**src["settings"])
        except (KeyError, TypeError, ValueError) as e:
            raise LabelsFolderError(
                f"{self.settings_path}: not a pseudo-labels settings file ({e})"
            ) from None

    def remove_temporaries(self) -> list[Path]:
        """Delete the temporary files a killed run left (``.<name>.*.tmp``, never under a final
        name), so that a resumed folder holds what an uninterrupted run's does; returns them."""
        dirs = [self.root, *(self.root / d for d in (self.IMAGES, self.MAPS, self.SEMANTIC, self.RANKS))]
        stale = [p for d in dirs if d.is_dir() for p in d.glob(".*.tmp") if p.is_file()]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    # --------------------------------------------------------------------------- per image
    def is_done(self, image_id: int) -> bool:
        return self.result_path(image_id).is_file()

    def finished(self) -> list[int]:
        """The ids of the images whose result is written, in ascending order."""
        return sorted(int(p.stem) for p in (self.root / self.IMAGES).glob("*.npz"))

    def pending(self, recs: Sequence[ImageRecord]) -> list[ImageRecord]:
        """The records still to label: no result file, or a damaged one (reported in one line and
        removed, so the image is labelled again)."""
        todo = []
        for rec in recs:
            path = self.result_path(rec.image_id)
            if not path.exists():
                todo.append(rec)
                continue
            try:
                self.check_image(rec)
            except LabelsFolderError as e:
                warnings.warn(f"{e}; labelling image {rec.image_id} again", LabelsFolderWarning, stacklevel=2)
                path.unlink()
                todo.append(rec)
        return todo

    def check_image(self, rec: ImageRecord) -> None:
        """Read every file of one finished image (result, class map, maps where stored); a damaged
        or missing one raises :class:`LabelsFolderError` naming it."""
        self.read_image(rec.image_id)
        sem = self.read_semantic(rec)
        if sem.shape != (rec.height, rec.width):
            raise LabelsFolderError(
                f"{self.semantic_path(rec)}: damaged class map ({sem.shape[1]}x{sem.shape[0]}, "
                f"image {rec.width}x{rec.height})"
            )
        if self.has_maps(rec.image_id):
            self.read_maps(rec.image_id)

    def write_image(self, rec: ImageRecord, labels: ImageLabels, semantic: np.ndarray) -> None:
        """Write one image's class map, maps and result; the result last (it marks the image done)."""
        self._writing(self.semantic_path(rec), lambda: write_semantic_png(self.semantic_path(rec), semantic))
        if labels.maps:
            _save_npz(self.maps_path(rec.image_id), labels.maps, self._writing)
        insts = labels.instances
        arrays = {
            "labels": np.array([i.label for i in insts], np.int64),
            "boxes": np.array([i.box for i in insts], np.float32).reshape(-1, 4),
            "scores": np.array([i.score for i in insts], np.float32),
            "fg": np.array([i.fg for i in insts], bool),
            "ignore": np.array([i.ignore for i in insts], bool),
            "info": np.array(json.dumps(labels.info)),
        }
        _save_npz(self.result_path(rec.image_id), arrays, self._writing)

    def read_image(self, image_id: int) -> tuple[list[InstanceLabel], list[dict]]:
        """The instances and per-object info of one finished image."""
        return read_result_file(self.result_path(image_id))

    def has_maps(self, image_id: int) -> bool:
        return self.maps_path(image_id).is_file()

    def read_maps(self, image_id: int) -> np.ndarray:
        """The stored maps (K, H, W) float32 of one image's objects."""
        path = self.maps_path(image_id)
        if not path.is_file():
            raise LabelsFolderError(
                f"{path}: no stored maps for image {image_id}; make them first (bbam-lite pseudo-labels "
                "--method bbam on the same images)"
            )
        if not zipfile.is_zipfile(path):
            raise LabelsFolderError(f"{path}: damaged maps file (not a zip archive)")
        try:
            with np.load(path, allow_pickle=False) as z:
                return z["bbam"].astype(np.float32)
        except _UNREADABLE as e:
            raise LabelsFolderError(f"{path}: damaged maps file ({type(e).__name__}: {e})") from None

    def read_semantic(self, rec: ImageRecord) -> np.ndarray:
        """One image's class map (255 = ignore)."""
        path = self.semantic_path(rec)
        if not path.is_file():
            raise LabelsFolderError(f"{path}: semantic label missing for image id {rec.image_id}")
        try:
            return read_semantic_png(path)
        except (OSError, SyntaxError, ValueError) as e:  # PIL: truncated, not a PNG, bad chunk
            raise LabelsFolderError(f"{path}: damaged class map ({type(e).__name__}: {e})") from None

    def images_with_maps(self, recs: Iterable[ImageRecord]) -> list[ImageRecord]:
        return [r for r in recs if self.has_maps(r.image_id)]

    # ----------------------------------------------------------------------- whole folder
    def write_instances(self, data: dict) -> None:
        self._writing(self.instances_path, lambda: write_coco_json(self.instances_path, data))

    def write_quality(self, quality: dict) -> None:
        """Write ``quality.json``; a rerun that labelled nothing (``images_this_run`` 0) and would
        change only the :data:`RUN_FACTS` keeps the stored file (so it writes nothing)."""
        stored = self.quality()
        if quality.get("images_this_run") == 0 and stored is not None:
            new = json.loads(json.dumps(quality))
            if {k: v for k, v in stored.items() if k not in RUN_FACTS} == {
                k: v for k, v in new.items() if k not in RUN_FACTS
            }:
                return
        self._writing(self.quality_path, lambda: atomic_write_json(self.quality_path, quality, indent=2))

    def quality(self) -> dict | None:
        """The folder's ``quality.json``, or None where it is missing or damaged (not finished)."""
        try:
            return json.loads(self.quality_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None

    def write_rank(self, rank: int, world_size: int, data: dict) -> None:
        path = self.rank_path(rank, world_size)
        self._writing(path, lambda: atomic_write_json(path, data))

    def read_rank(self, rank: int, world_size: int) -> dict:
        return json.loads(self.rank_path(rank, world_size).read_text(encoding="utf-8"))

    def _writing(self, path: Path, write: Callable[[], Any]) -> Any:
        """Run ``write``; an OS error (a full disk, no permission) is one line naming ``path``."""
        with writing(path):
            return write()


def read_result_file(path: Path) -> tuple[list[InstanceLabel], list[dict]]:
    """The instances and per-object info stored in one ``images/<id>.npz``."""
    path = Path(path)
    if path.is_file() and not zipfile.is_zipfile(path):
        raise LabelsFolderError(f"{path}: damaged per-image result (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            info = json.loads(str(z["info"]))
            insts = [
                InstanceLabel(int(c), b, f, g, float(s), inf)
                for c, b, f, g, s, inf in zip(
                    z["labels"], z["boxes"], z["fg"], z["ignore"], z["scores"], info, strict=True
                )
            ]
    except FileNotFoundError:
        raise LabelsFolderError(f"{path}: per-image result not found (image not labelled yet)") from None
    except (*_UNREADABLE, json.JSONDecodeError) as e:
        raise LabelsFolderError(f"{path}: damaged per-image result ({type(e).__name__}: {e})") from None
    return insts, info


#: The time stamp of every member of a per-image archive: the files' bytes depend on their content
#: only, so a rerun, a resumed run or a run with other ``--workers`` writes the same bytes.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def write_npz(f, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed(f, **arrays)`` with fixed time stamps (numpy stamps the current time)."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
        for name, value in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            member.compress_type = zipfile.ZIP_DEFLATED
            with z.open(member, "w", force_zip64=True) as fid:
                np.lib.format.write_array(fid, np.asanyarray(value), allow_pickle=False)


def _save_npz(path: Path, arrays: dict[str, np.ndarray], writing: Callable) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            write_npz(f, arrays)

    writing(path, lambda: atomic_save(path, write))
