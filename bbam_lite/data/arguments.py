"""The dataset options the commands share (``--data``, ``--dataset``, ``--split``) and the split
they name, read with the option to change in its one-line error."""

from __future__ import annotations

import argparse
from pathlib import Path

from bbam_lite.data import load_dataset
from bbam_lite.data.records import BoxDataset
from bbam_lite.data.registry import detection_help, reader_names


def add_dataset_arg(p: argparse.ArgumentParser) -> None:
    """``--dataset``: auto or a registered reader's name."""
    p.add_argument(
        "--dataset",
        choices=["auto", *reader_names()],
        default="auto",
        help=f"dataset kind; auto: {detection_help()}",
    )


def add_data_args(p: argparse.ArgumentParser, split: str | None = None) -> None:
    """``--data`` (required), ``--dataset`` and, when ``split`` is given, ``--split`` defaulting to it."""
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="dataset root (synthetic folder, VOC2012 folder or COCO root)",
    )
    add_dataset_arg(p)
    if split:
        p.add_argument("--split", default=split, help=f"split to use (default: {split})")


def load_split(root: Path, kind: str, split: str, split_option: str = "--split") -> BoxDataset:
    """Read a split; a missing one is a one-line error naming ``split_option``, the option to change."""
    return load_dataset(kind, root, split, split_option=split_option)
