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

from bbam_lite.data.records import BoxDataset, ImageRecord
from bbam_lite.metrics import LabelQuality
from bbam_lite.pseudo.folder import LabelsFolder
from bbam_lite.pseudo.labels import InstanceLabel, instances_to_semantic
from bbam_lite.pseudo.methods.box_crf import box_prior
from bbam_lite.pseudo.postprocess import PostProcess
from bbam_lite.pseudo.refine import mask_proposals
from bbam_lite.pseudo.settings import PseudoLabelSettings

#: Where a variant's map comes from: the stored BBAM, or Box + CRF's uniform prior inside the box.
SOURCES = ("map", "prior")


@dataclass(frozen=True)
class Variant:
    """One way from a map to a pseudo label: a source map and a :class:`PostProcess`."""

    source: str = "map"  # map: the stored BBAM | prior: a uniform prior inside the box (Box + CRF's)
    crf: bool = True
    theta_fg: float = 0.8
    theta_bg: float = 0.2
    refine: bool = False  # Eq. 4 with mask proposals
    # values: theta_fg / theta_bg on the (CRF-refined) map's values, as the paper states it;
    # quantiles: the authors' code (area quantiles 0.85 / 0.2, blur, CRF; the thetas are not used)
    rule: str = "values"

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"variant source must be one of {SOURCES}, got {self.source!r}")
        if self.rule == "quantiles" and not self.crf:
            raise ValueError("the quantile rule (authors' code) includes its CRF: crf must be True")
        self.post("full")  # validates the rule and the thresholds

    def post(self, profile: str) -> PostProcess:
        """The post-processing of this variant at ``profile`` (CRF widths, refinement's minimum side)."""
        return PostProcess(self.rule, self.crf, self.theta_fg, self.theta_bg, self.refine, profile)

    def prob(self, bbam: np.ndarray, box: np.ndarray) -> np.ndarray:
        """The map this variant starts from."""
        return bbam if self.source == "map" else box_prior(box, *bbam.shape)


#: The chapter's variants, from the bare map to the paper's full recipe, and the box-only CRF.
TABLE4_VARIANTS: dict[str, Variant] = {
    "BBAM > 0.5 (no CRF, no ignore band)": Variant(crf=False, theta_fg=0.5, theta_bg=0.5),
    "BBAM, θ 0.8 / 0.2 (no CRF)": Variant(crf=False),
    "BBAM + CRF, θ 0.8 / 0.2 (paper)": Variant(),
    "BBAM + CRF + proposals (Eq. 4)": Variant(refine=True),
    "BBAM, area quantiles 0.85 / 0.2 + blur + CRF (authors' code)": Variant(rule="quantiles"),
    "CRF on the box alone (Q > 0.5)": Variant(source="prior", theta_fg=0.5, theta_bg=0.5),
}


def _score_image(
    rec: ImageRecord,
    folder: LabelsFolder,
    variants: dict[str, Variant],
    settings: PseudoLabelSettings,
    n_classes: int,
) -> dict[str, tuple[LabelQuality, list[dict]]]:
    """Every variant's scorer and per-object rows for one image."""
    image = rec.load_image()
    maps = folder.read_maps(rec.image_id)
    if len(maps) != len(rec.boxes):
        raise ValueError(
            f"{folder.maps_path(rec.image_id)}: {len(maps)} maps for {len(rec.boxes)} boxes "
            "(labels made with detector boxes cannot be re-derived against ground-truth boxes)"
        )
    proposals = None
    if any(v.refine for v in variants.values()):
        proposals = mask_proposals(image, rec.path, settings.mcg_dir)
    info = folder.read_image(rec.image_id)[1] if folder.is_done(rec.image_id) else [{}] * len(maps)
    gt_masks = rec.load_masks()
    out = {}
    for name, variant in variants.items():
        post = variant.post(settings.profile)
        insts = []
        for k, (box, label) in enumerate(zip(rec.boxes, rec.labels, strict=True)):
            fg, ignore, _ = post.label(
                image,
                variant.prob(maps[k], box),
                box,
                info[k].get("stride"),
                proposals,
                failed=variant.source == "map" and bool(info[k].get("failed")),
            )
            insts.append(InstanceLabel(int(label), np.asarray(box, np.float32), fg, ignore))
        sem = instances_to_semantic(insts, rec.height, rec.width, post.contained_wins)
        scorer = LabelQuality(n_classes)
        ious = scorer.add(gt_masks, rec.labels, sem, [i.fg for i in insts], [i.label for i in insts])
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
        out[name] = (scorer, rows)
    return out


_FORKED: tuple | None = None  # (records, arguments) shared with forked workers


def _score_forked(i: int) -> dict[str, tuple[LabelQuality, list[dict]]]:
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
    folder = LabelsFolder(labels_dir)
    recs = [r for r in list(dataset)[: limit if limit is not None else None] if r.has_masks]
    recs = folder.images_with_maps(recs)
    if not recs:
        raise ValueError(f"{labels_dir}: no stored BBAM maps for images with ground-truth masks")
    n_cls = len(dataset.class_names)
    args = (folder, variants, settings, n_cls)
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
        total = LabelQuality(n_cls)
        rows: list[dict] = []
        for scores in per_image:
            part, r = scores[name]
            total.merge(part)
            rows += r
        result[name] = {
            "variant": asdict(variant),
            "images": len(recs),
            **total.result(),
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
        fg, ignore, _ = v.post(settings.profile).label(
            image, v.prob(bbam, box), box, stride, proposals if v.refine else None
        )
        out.append((fg, ignore))
    return out
