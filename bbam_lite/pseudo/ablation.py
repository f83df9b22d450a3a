"""From stored BBAMs to pseudo labels under other post-processing (chapter 6 of the book).

A BBAM labels folder keeps every object's map (``bbam/<image_id>.npz``, float16). The steps after
the map -- dense CRF, the theta_fg / theta_bg thresholds with their ignore band, the proposal
refinement of Eq. 4 -- are cheap next to the optimisation, so an ablation of them (the paper's
Table 4 for the refinement) re-derives the labels from the stored maps instead of re-optimising.
The same code scores a dense CRF on the box alone (a uniform prior inside the box), which is what
BBAM has to beat to add anything over low-level cues.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bbam_lite.baselines import BOX_CRF_PRIOR
from bbam_lite.data.records import BoxDataset, ImageRecord
from bbam_lite.metrics import ConfusionMatrix, best_match_ious
from bbam_lite.pseudo.generate import PseudoLabelSettings, load_image_result
from bbam_lite.pseudo.labels import (
    InstanceLabel,
    box_region,
    instances_to_semantic,
    refine_official,
    refine_paper,
)
from bbam_lite.pseudo.refine import grouping_proposals, read_mcg, refine_with_proposals


@dataclass(frozen=True)
class Variant:
    """One way from a map to a pseudo label."""

    source: str = "bbam"  # bbam: the stored map | box: a uniform prior inside the box
    crf: bool = True
    theta_fg: float = 0.8
    theta_bg: float = 0.2
    refine: bool = False  # Eq. 4 with mask proposals
    # values: theta_fg / theta_bg on the (CRF-refined) map's values, as the paper states it;
    # quantiles: the authors' code (area quantiles 0.85 / 0.2, blur, CRF; the thetas are not used)
    rule: str = "values"

    def __post_init__(self) -> None:
        if self.source not in ("bbam", "box"):
            raise ValueError(f"variant source must be bbam or box, got {self.source!r}")
        if self.rule not in ("values", "quantiles"):
            raise ValueError(f"variant rule must be values or quantiles, got {self.rule!r}")
        if self.rule == "quantiles" and not self.crf:
            raise ValueError("the quantile rule (authors' code) includes its CRF: crf must be True")
        if not 0 <= self.theta_bg <= self.theta_fg <= 1:
            raise ValueError(f"need 0 <= theta_bg <= theta_fg <= 1, got {self.theta_bg}, {self.theta_fg}")


#: The chapter's variants, from the bare map to the paper's full recipe, and the box-only CRF.
TABLE4_VARIANTS: dict[str, Variant] = {
    "BBAM > 0.5 (no CRF, no ignore band)": Variant(crf=False, theta_fg=0.5, theta_bg=0.5),
    "BBAM, θ 0.8 / 0.2 (no CRF)": Variant(crf=False),
    "BBAM + CRF, θ 0.8 / 0.2 (paper)": Variant(),
    "BBAM + CRF + proposals (Eq. 4)": Variant(refine=True),
    "BBAM, area quantiles 0.85 / 0.2 + blur + CRF (authors' code)": Variant(rule="quantiles"),
    "CRF on the box alone (Q > 0.5)": Variant(source="box", theta_fg=0.5, theta_bg=0.5),
}


def _instance(
    image: np.ndarray,
    prob: np.ndarray,
    box: np.ndarray,
    label: int,
    variant: Variant,
    settings: PseudoLabelSettings,
    proposals: np.ndarray | None,
    stride: float | None = None,
) -> InstanceLabel:
    h, w = prob.shape
    crf = settings.crf_params(h, w) if variant.crf else None
    if variant.rule == "quantiles":
        if stride is None:
            raise ValueError("the quantile rule needs the object's stride (its blur kernel)")
        fg, ignore, _ = refine_official(image, prob, box, float(stride), crf)
    else:
        fg, ignore, _ = refine_paper(image, prob, box, crf, variant.theta_fg, variant.theta_bg)
    if variant.refine:
        if proposals is None:
            raise ValueError("a variant with refine=True needs mask proposals")
        fg = refine_with_proposals(fg, proposals, 1.0, box)
        ignore &= ~fg
    return InstanceLabel(int(label), np.asarray(box, np.float32), fg, ignore)


def _score_image(
    rec: ImageRecord,
    labels_dir: Path,
    variants: dict[str, Variant],
    settings: PseudoLabelSettings,
    n_classes: int,
) -> dict[str, tuple[ConfusionMatrix, ConfusionMatrix, list[dict]]]:
    """Every variant's confusion matrices (ignore excluded; ignore as background) and per-object rows
    for one image."""
    image = rec.load_image()
    with np.load(labels_dir / "bbam" / f"{rec.image_id}.npz", allow_pickle=False) as z:
        maps = z["bbam"].astype(np.float32)
    if len(maps) != len(rec.boxes):
        raise ValueError(
            f"{labels_dir}/bbam/{rec.image_id}.npz: {len(maps)} maps for {len(rec.boxes)} boxes "
            "(labels made with detector boxes cannot be re-derived against ground-truth boxes)"
        )
    proposals = None
    if any(v.refine for v in variants.values()):
        proposals = (
            read_mcg(Path(settings.mcg_dir) / f"{rec.path.stem}.mat")
            if settings.mcg_dir
            else grouping_proposals(image)
        )
    strides = [None] * len(maps)
    if any(v.rule == "quantiles" for v in variants.values()):  # the blur's kernel is the stride
        strides = [
            obj["stride"] for obj in load_image_result(labels_dir / "images" / f"{rec.image_id}.npz")[1]
        ]
    gt_masks = rec.load_masks()
    gt = np.zeros((rec.height, rec.width), np.uint8)
    for m, c in zip(gt_masks, rec.labels, strict=True):
        gt[m] = c
    out = {}
    for name, variant in variants.items():
        insts = []
        for k, (box, label) in enumerate(zip(rec.boxes, rec.labels, strict=True)):
            if variant.source == "bbam":
                prob = maps[k]
            else:
                prob = box_region(box, rec.height, rec.width) * np.float32(BOX_CRF_PRIOR)
            insts.append(_instance(image, prob, box, label, variant, settings, proposals, strides[k]))
        sem = instances_to_semantic(insts, rec.height, rec.width, variant.rule == "quantiles")
        conf = ConfusionMatrix(n_classes)
        conf.update(gt, sem)
        conf_bg = ConfusionMatrix(n_classes)
        conf_bg.update(gt, np.where(sem == 255, 0, sem).astype(np.uint8))
        ious = best_match_ious(gt_masks, rec.labels, [i.fg for i in insts], [i.label for i in insts])
        rows = []
        for k, iou in enumerate(ious):
            x1, y1, x2, y2 = rec.boxes[k]
            rows.append(
                {
                    "image_id": rec.image_id,
                    "index": k,
                    "label": int(rec.labels[k]),
                    "area_ratio": float((x2 - x1) * (y2 - y1) / (rec.width * rec.height)),
                    "iou": float(iou),
                }
            )
        out[name] = (conf, conf_bg, rows)
    return out


_FORKED: tuple | None = None  # (records, arguments) shared with forked workers


def _score_forked(i: int) -> dict[str, tuple[ConfusionMatrix, ConfusionMatrix, list[dict]]]:
    recs, args = _FORKED
    return _score_image(recs[i], *args)


def rederive(
    dataset: BoxDataset,
    labels_dir: Path,
    variants: dict[str, Variant],
    settings: PseudoLabelSettings,
    limit: int | None = None,
    workers: int = 1,
) -> dict[str, dict]:
    """Score each variant on the images of ``labels_dir`` that have stored maps (ground-truth boxes).

    ``workers`` > 1 spreads the images over that many processes (the CRF runs on the CPU; on a
    many-core GPU machine this is what makes the full profile's thousands of objects affordable);
    the result does not depend on it. Returns ``{name: {variant, images, miou, ignore_fraction,
    mean_instance_iou, objects}}`` where ``objects`` lists ``{image_id, index, label, area_ratio,
    iou}`` per object, in dataset order.
    """
    labels_dir = Path(labels_dir)
    recs = [r for r in list(dataset)[: limit if limit is not None else None] if r.has_masks]
    recs = [r for r in recs if (labels_dir / "bbam" / f"{r.image_id}.npz").is_file()]
    if not recs:
        raise ValueError(f"{labels_dir}: no stored BBAM maps for images with ground-truth masks")
    n_cls = len(dataset.class_names)
    args = (labels_dir, variants, settings, n_cls)
    if workers > 1:
        import multiprocessing

        # records carry their mask loaders (closures, not picklable): forked workers inherit them
        global _FORKED
        _FORKED = (recs, args)
        try:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                per_image = pool.map(_score_forked, range(len(recs)), chunksize=4)
        finally:
            _FORKED = None
    else:
        per_image = [_score_image(rec, *args) for rec in recs]
    result = {}
    for name, variant in variants.items():
        conf, conf_bg = ConfusionMatrix(n_cls), ConfusionMatrix(n_cls)
        rows: list[dict] = []
        for scores in per_image:
            c, c_bg, r = scores[name]
            for total, part in ((conf, c), (conf_bg, c_bg)):
                total.mat += part.mat
                total.ignored += part.ignored
                total.total += part.total
            rows += r
        result[name] = {
            "variant": asdict(variant),
            "images": len(recs),
            "miou": conf.miou(),
            "ignore_fraction": conf.ignore_fraction,
            "miou_ignore_as_background": conf_bg.miou(),
            "mean_instance_iou": float(np.mean([r["iou"] for r in rows])) if rows else 0.0,
            "objects": rows,
        }
    return result


def variant_masks(
    image: np.ndarray,
    bbam: np.ndarray,
    box: np.ndarray,
    settings: PseudoLabelSettings,
    variants: Sequence[Variant],
    proposals: np.ndarray | None = None,
    stride: float | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(foreground, ignore) of one object under each variant, for figures (``stride``: the object's
    BBAM stride, needed by the quantile rule)."""
    out = []
    for v in variants:
        prob = bbam if v.source == "bbam" else box_region(box, *bbam.shape) * np.float32(BOX_CRF_PRIOR)
        inst = _instance(image, prob, box, 0, v, settings, proposals if v.refine else None, stride)
        out.append((inst.fg, inst.ignore))
    return out
