"""What a labels folder labels: the dataset split and the images it was made from.

``pseudo-labels`` records it in ``LABELS/identity.json`` (:func:`record_identity`): the dataset's
name (its kind and split: ``synthetic-train``, ``voc2012_val``, ...), its resolved image root, the
ids of the images labelled, and a digest of those images (id, file name, size in pixels and in
bytes; the bytes tell two generations of the synthetic set apart, whose images share ids and
names). ``train-seg`` and ``evaluate --labels`` compare it with the split they are given
(:func:`check_labels`) and refuse labels of another split or dataset in one line naming both. A
folder made before this record existed is checked by its ``settings.json`` (dataset name and
root) and otherwise trusted with a one-line warning.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

from bbam_lite.data.records import BoxDataset, DataError, DataWarning, ImageRecord
from bbam_lite.pseudo.folder import LabelsFolder
from bbam_lite.utils.io import atomic_write_json

IDENTITY = "identity.json"
VERSION = 1


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def images_digest(records: Sequence[ImageRecord]) -> str:
    """A digest of the images ``records`` name: id, file name, width x height and file size each."""
    h = hashlib.sha256()
    for r in records:
        h.update(f"{r.image_id}\t{r.path.name}\t{r.width}x{r.height}\t{_file_size(r.path)}\n".encode())
    return h.hexdigest()[:16]


def _root(dataset: BoxDataset) -> str | None:
    return str(Path(dataset.root).resolve()) if dataset.root is not None else None


def identity(dataset: BoxDataset, records: Sequence[ImageRecord]) -> dict:
    """The identity of labels made from ``records`` of ``dataset`` (what ``identity.json`` holds)."""
    return {
        "version": VERSION,
        "dataset": dataset.name,
        "root": _root(dataset),
        "split_images": len(dataset),
        "images": len(records),
        "digest": images_digest(records),
        "image_ids": [r.image_id for r in records],
    }


def _what(name: str | None, n: int | None, root: str | None) -> str:
    return f"{name} ({n} images of {root})" if n is not None else f"{name} ({root})"


def mismatch(recorded: dict, dataset: BoxDataset) -> str | None:
    """Why labels recorded as ``recorded`` are not labels of ``dataset`` (None when they are)."""
    if recorded.get("dataset") != dataset.name:
        return "another split or dataset"
    by_id = {r.image_id: r for r in dataset}
    missing = [i for i in recorded.get("image_ids", []) if i not in by_id]
    if missing:
        return f"{len(missing)} of its images are not in the split (image id {missing[0]})"
    if images_digest([by_id[i] for i in recorded["image_ids"]]) != recorded.get("digest"):
        return "other images under the same ids and names (another generation or seed of the dataset?)"
    return None


def _refusal(folder: LabelsFolder, recorded: dict, dataset: BoxDataset, why: str) -> DataError:
    theirs = _what(recorded.get("dataset"), recorded.get("images"), recorded.get("root"))
    mine = _what(dataset.name, len(dataset), _root(dataset))
    return DataError(f"{folder.root}: labels {theirs}, not {mine}: {why}")


def read_identity(folder: LabelsFolder) -> dict | None:
    """The folder's ``identity.json``, or None where there is none; a damaged one is one line."""
    path = folder.root / IDENTITY
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("image_ids"), list):
            raise ValueError("not an identity record")
        return data
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path}: unreadable identity record ({e}); delete it to trust the folder") from None


def record_identity(folder: LabelsFolder, dataset: BoxDataset, records: Sequence[ImageRecord]) -> None:
    """Write the identity of labels of ``records`` of ``dataset`` into ``folder`` (fresh or made
    before the record existed); refuse to add labels of other images to a folder that has one."""
    recorded = read_identity(folder)
    mine = identity(dataset, records)
    if recorded is None:
        path = folder.root / IDENTITY
        folder._writing(path, lambda: atomic_write_json(path, mine, indent=1))
        return
    why = mismatch(recorded, dataset)
    if why is None and recorded["image_ids"] != mine["image_ids"]:
        why = "other images of the split"
    if why:
        raise _refusal(folder, recorded, dataset, why + "; use another --out")


def check_labels(folder: LabelsFolder, dataset: BoxDataset, used: BoxDataset | None = None) -> None:
    """Refuse (one-line :class:`DataError`) labels in ``folder`` that are not of ``dataset``, the
    whole split given; warn in one line when they cover only some of ``used`` (the images that
    will be used, default all of ``dataset``), or when the folder cannot be checked."""
    used = dataset if used is None else used
    recorded = read_identity(folder)
    if recorded is not None:
        why = mismatch(recorded, dataset)
        if why:
            raise _refusal(folder, recorded, dataset, why)
        labelled = set(recorded["image_ids"])
        n = sum(r.image_id in labelled for r in used)
        if n < len(used):
            warnings.warn(
                f"{folder.root}: labels {n} of the {len(used)} images of {dataset.name} used (made with "
                f"--limit {recorded['images']}?); only those {n} are used",
                DataWarning,
                stacklevel=2,
            )
        return
    made = folder.settings() if folder.settings_path.is_file() else {}
    if "dataset" not in made:
        if folder.root.is_dir() and any(folder.root.iterdir()):
            warnings.warn(
                f"{folder.root}: neither {IDENTITY} nor settings.json names a dataset: cannot check "
                "which images it labels",
                DataWarning,
                stacklevel=2,
            )
        return  # an empty or missing folder: the readers say what is missing
    root = made.get("root")
    mine = _root(dataset)
    absolute = root is not None and mine is not None and Path(root).is_absolute()
    same_root = not absolute or Path(root).resolve() == Path(mine)
    if made.get("dataset") != dataset.name or not same_root:
        theirs = {"dataset": made.get("dataset"), "root": root, "images": None}
        raise _refusal(folder, theirs, dataset, "another split or dataset (its settings.json)")
    warnings.warn(
        f"{folder.root}: made before labels folders recorded their images (no {IDENTITY}); "
        f"its settings.json names {dataset.name}, so it is trusted",
        DataWarning,
        stacklevel=2,
    )
