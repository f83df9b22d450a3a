"""Per-object crops of a demo run: image, ground truth, raw BBAM, BBAM pseudo label, Box + CRF label.

    python scripts/inspect_bbam_maps.py DEMO/data DEMO/labels OUT.png [--objects 12]

DEMO is a folder written by ``bbam-lite demo``; titles give the raw map's maximum and mean inside
the box, each label's IoU with the ground truth and the number of positive proposals (P).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bbam_lite.data.synthetic import read_synthetic  # noqa: E402
from bbam_lite.metrics import mask_iou  # noqa: E402
from bbam_lite.pseudo.folder import LabelsFolder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", type=Path)
    parser.add_argument("labels", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--objects", type=int, default=12)
    args = parser.parse_args()
    rows = []
    bbam_folder, box_crf_folder = LabelsFolder(args.labels / "bbam"), LabelsFolder(args.labels / "box_crf")
    for rec in read_synthetic(args.data, "train"):
        maps = bbam_folder.read_maps(rec.image_id)
        bbam, info = bbam_folder.read_image(rec.image_id)
        box_crf, _ = box_crf_folder.read_image(rec.image_id)
        image, gts = rec.load_image(), rec.load_masks()
        for k in range(len(bbam)):
            rows.append((image, rec.boxes[k], gts[k], maps[k], bbam[k], box_crf[k].fg, info[k]))
    rows = rows[: args.objects]
    fig, axes = plt.subplots(len(rows), 5, figsize=(10, 2 * len(rows)), squeeze=False)
    for r, (image, box, gt, bmap, inst, bfg, inf) in enumerate(rows):
        x0, y0, x1, y1 = (int(v) for v in box)
        crop = (slice(max(y0 - 4, 0), y1 + 4), slice(max(x0 - 4, 0), x1 + 4))
        panels = [
            (image[crop], "image"),
            (gt[crop], "ground truth"),
            (bmap[crop], f"BBAM max {bmap.max():.2f}, in-box mean {bmap[y0:y1, x0:x1].mean():.2f}"),
            (
                inst.fg[crop] + 0.5 * inst.ignore[crop],
                f"BBAM label IoU {mask_iou(inst.fg, gt):.2f}, P {inf['n_positives']}",
            ),
            (bfg[crop], f"Box+CRF IoU {mask_iou(bfg, gt):.2f}"),
        ]
        for ax, (im, title) in zip(axes[r], panels, strict=True):
            ax.imshow(im, vmin=0, vmax=1)
            ax.set_title(title, fontsize=6)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.out, dpi=70)


if __name__ == "__main__":
    main()
