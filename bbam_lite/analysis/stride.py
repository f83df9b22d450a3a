"""Fixed strides against the adaptive stride s(a) = 16 + 48 sqrt(a), by object size (Fig. 7b).

The paper measures the IoU between the BBAM and the ground-truth mask on VOC val, for fixed strides
24 and 48 and for s(a): a small stride fails on large objects, a large one on small objects. Strides
are given in the paper's pixels; on smaller images the workspace's lite profile scales every stride
by (image side / 375), as it does for s(a) (see ``BBAMConfig.stride_reference_side``).

Two IoUs per object: of the raw map (BBAM > 0.5 inside the box, what the paper plots) and of the
pseudo label made from it (dense CRF, theta_fg, as everywhere else in the pipeline).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bbam_lite.analysis.study import ObjectMap, analysis_images, bbam_labels, map_iou, quality_row, read_maps

#: Fig. 7b's settings as BBAMConfig overrides (stride in the paper's pixels; None = adaptive).
STRIDES: dict[str, dict[str, Any]] = {
    "s = 24": {"stride": 24.0},
    "s = 48": {"stride": 48.0},
    "adaptive s(a)": {},
}
SIZE_NAMES = ("small", "medium", "large")


def size_edges(area_ratios: list[float]) -> tuple[float, float, float, float]:
    """Bin edges on a = box area / image area at the terciles of the objects studied.

    Terciles, not fixed edges, because datasets differ: on VOC a spans 0.001-1, on the synthetic set
    most objects lie between 0.04 and 0.3, where s(a) runs from 26 to 42 (paper px).
    """
    if not area_ratios:
        return (0.0, 1 / 3, 2 / 3, 1.0)
    q1, q2 = np.quantile(area_ratios, [1 / 3, 2 / 3])
    return (0.0, float(q1), float(q2), 1.0)


def size_bin(area_ratio: float, edges: tuple[float, ...]) -> int:
    """Index of the size bin of an object covering ``area_ratio`` of its image."""
    return int(np.clip(np.searchsorted(edges, area_ratio, side="right") - 1, 0, len(edges) - 2))


def object_rows(maps: list[ObjectMap], setting: str, label_fg: dict | None = None) -> list[dict[str, Any]]:
    """Per object: size, stride used, IoU of the raw map (> 0.5, inside the box) and of its pseudo label."""
    rows = []
    for m in maps:
        row = {
            "setting": setting,
            "image_id": m.obj.image_id,
            "object": m.obj.index,
            "area_ratio": m.obj.area_ratio,
            "stride": float(m.info.get("stride", float("nan"))),
            "fallback": m.info.get("fallback"),
            "iou_map": map_iou(m.bbam, m.obj.gt, m.obj.box, 0.5),
        }
        if label_fg is not None:
            from bbam_lite.metrics import mask_iou

            row["iou_label"] = mask_iou(label_fg[m.obj.key], m.obj.gt)
        rows.append(row)
    return rows


def _label_masks(folder) -> dict[tuple[int, int], np.ndarray]:
    from bbam_lite.pseudo.folder import LabelsFolder

    labels = LabelsFolder(folder)
    out = {}
    for image_id in labels.finished():
        insts, _ = labels.read_image(image_id)
        for k, inst in enumerate(insts):
            out[(image_id, k)] = inst.fg
    return out


def stride_study(
    ws,
    settings: dict[str, dict[str, Any]] = STRIDES,
    n_images: int | None = None,
    iterations: int | None = None,
    split: str = "train",
) -> dict[str, Any]:
    """Per-object rows for every setting, the pseudo-label quality of each, and a summary by size."""
    rows, quality = [], []
    ds = ws.data(split)
    for name, overrides in settings.items():
        folder, q = bbam_labels(ws, n_images, iterations, split, **overrides)
        n = analysis_images(ws) if n_images is None else n_images
        rows += object_rows(read_maps(folder, ds, n), name, _label_masks(folder))
        quality.append(quality_row(q, setting=name))
    edges = size_edges([r["area_ratio"] for r in rows if r["setting"] == next(iter(settings))])
    return {"rows": rows, "quality": quality, "size_edges": list(edges), "summary": summarise(rows, edges)}


def summarise(rows: list[dict[str, Any]], edges: tuple[float, ...]) -> list[dict[str, Any]]:
    """Mean IoUs per (setting, size bin), with the object count; sets each row's ``size``."""
    for r in rows:
        r["size"] = SIZE_NAMES[size_bin(r["area_ratio"], edges)]
    out = []
    for setting in dict.fromkeys(r["setting"] for r in rows):
        for size in SIZE_NAMES:
            sel = [r for r in rows if r["setting"] == setting and r["size"] == size]
            if not sel:
                continue
            out.append(
                {
                    "setting": setting,
                    "size": size,
                    "objects": len(sel),
                    "iou_map": float(np.mean([r["iou_map"] for r in sel])),
                    "iou_label": float(np.mean([r.get("iou_label", np.nan) for r in sel])),
                    "stride_px": float(np.mean([r["stride"] for r in sel])),
                }
            )
    return out


def stride_table(cfg, height: int, width: int, ratios=(0.01, 0.05, 0.1, 0.2, 0.4)):
    """The strides of Fig. 7b's settings for objects covering ``ratios`` of an image of ``height``
    x ``width`` px: s(a) in the paper's pixels, and each setting's stride on this image (scaled by
    its side, see ``BBAMConfig.stride_for``). ``cfg`` is the run's BBAMConfig; returns a Table."""
    from dataclasses import replace

    from bbam_lite.analysis.tables import Table

    rows = []
    for a in ratios:
        row = {
            "a": a,
            "adaptive (paper px)": 16 + 48 * a**0.5,
            "adaptive (this run, px)": cfg.stride_for(a, height, width),
        }
        for name, o in STRIDES.items():
            if "stride" in o:
                row[f"{name} (this run, px)"] = replace(cfg, **o).stride_for(a, height, width)
        rows.append(row)
    cols = [("a", "a = box area / image area", ".2f")] + [(k, k, ".1f") for k in list(rows[0])[1:]]
    scale = f"{min(height, width)} / {cfg.stride_reference_side or min(height, width)}"
    caption = f"images of {width} x {height} px; stride scale {scale}"
    return Table(rows, cols, caption=caption)


def example_grid(maps: dict[str, list[ObjectMap]], by: str = "adaptive s(a)") -> list[dict[str, Any]]:
    """Rows for :func:`bbam_lite.analysis.plots.attribution_grid`: the smallest, the middle and the
    largest object (by a) of ``maps`` (setting -> the same objects' maps), each with every
    setting's BBAM."""
    ref = maps[by]
    order = sorted(range(len(ref)), key=lambda i: ref[i].obj.area_ratio)
    pick = [order[0], order[len(order) // 2], order[-1]] if len(order) >= 3 else order
    return [
        {
            "image": ref[i].obj.image,
            "box": ref[i].obj.box,
            "gt": ref[i].obj.gt,
            **{name: m[i].bbam for name, m in maps.items()},
        }
        for i in pick
    ]
