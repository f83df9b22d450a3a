"""Box AP of a detector on a dataset, with pycocotools' COCOeval."""

from __future__ import annotations

import contextlib
import io

import torch
from tqdm import tqdm

from bbam_lite.data.coco import coco_ground_truth
from bbam_lite.data.images import image_tensor
from bbam_lite.data.records import BoxDataset
from bbam_lite.detector.heads import detect


def run_detector(
    model: torch.nn.Module,
    dataset: BoxDataset,
    device: str | torch.device = "cpu",
    batch_size: int = 8,
    progress: bool = True,
) -> list[dict]:
    """Detections for every record, as COCO result dicts (bbox in x, y, w, h)."""
    results = []
    recs = list(dataset)
    bar = tqdm(total=len(recs), desc="detect", unit="img", disable=not progress, leave=False)
    for start in range(0, len(recs), batch_size):
        batch = recs[start : start + batch_size]
        outs = detect(model, [image_tensor(r.load_image(), device) for r in batch])
        for rec, out in zip(batch, outs, strict=True):
            for box, label, score in zip(
                out["boxes"].cpu().tolist(), out["labels"].tolist(), out["scores"].tolist(), strict=True
            ):
                x1, y1, x2, y2 = box
                results.append(
                    {
                        "image_id": rec.image_id,
                        "category_id": int(label),
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": float(score),
                    }
                )
        bar.update(len(batch))
    bar.close()
    return results


def coco_box_ap(dataset: BoxDataset, results: list[dict]) -> dict[str, float]:
    """COCOeval bbox metrics: box_ap (0.5:0.95), box_ap50, box_ap75, box_ap_s/m/l."""
    from pycocotools.cocoeval import COCOeval

    names = ["box_ap", "box_ap50", "box_ap75", "box_ap_s", "box_ap_m", "box_ap_l"]
    if not results:
        return dict.fromkeys(names, 0.0)
    gt = coco_ground_truth(dataset)
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {n: float(max(v, 0.0)) for n, v in zip(names, ev.stats[:6], strict=True)}


def evaluate_detector(
    model: torch.nn.Module,
    dataset: BoxDataset,
    device: str | torch.device = "cpu",
    batch_size: int = 8,
    progress: bool = True,
) -> dict[str, float]:
    """Run the detector over ``dataset`` and return its COCO box metrics."""
    return coco_box_ap(dataset, run_detector(model, dataset, device, batch_size, progress))
