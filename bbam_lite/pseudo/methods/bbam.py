"""BBAM (Lee et al., CVPR 2021): per box, the smallest mask that keeps the detector's box-head and
class-head outputs (:mod:`bbam_lite.attribution.bbam`), then :class:`~bbam_lite.pseudo.postprocess.
PostProcess` (thresholds or the authors' area quantiles, dense CRF, proposal refinement).

Two presets: ``official`` (the authors' code, the default) and ``paper`` (the paper's literal
text); see ``docs/bbam-settings.md``. An object whose optimisation hits a numerical fault is marked
failed: its box becomes an ignore region with no foreground and its info says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from bbam_lite.attribution.bbam import ObjectResult, ObjectTask, explain
from bbam_lite.data.images import image_tensor
from bbam_lite.pseudo.folder import ImageLabels, LabelsFolder
from bbam_lite.pseudo.labels import InstanceLabel, instances_to_semantic
from bbam_lite.pseudo.methods.base import ImageBoxes, LabelContext, Method, register
from bbam_lite.pseudo.postprocess import PostProcess
from bbam_lite.pseudo.refine import mask_proposals
from bbam_lite.pseudo.settings import PseudoLabelSettings

#: The fallback label of an object whose BBAM hit a numerical fault.
FAULT_FALLBACK = "numerical-fault:box-ignored"


@register
class BBAM(Method):
    name = "bbam"
    box_noise = {
        "contracted": "the detector's positives still find the object when the box cuts it",
        "expanded weakness": "its labels are cut to the label box, so a larger box lets the map and "
        "the CRF keep more background",
    }
    memory_per_pixel = 235.0  # its CPU stage is Box + CRF's (dense CRF per object) and the maps
    title = "BBAM"
    summary = "Bounding Box Attribution Map (needs the detector; --preset official or paper)"
    colour = "tab:green"
    order = 40
    needs_detector = True
    stores_maps = True
    batch_images = True
    settings = ("preset", "theta_fg", "theta_bg", "crf", "refine", "mcg_dir", "bbam", "maps_from")
    #: ``bbam`` is the default (the authors' code); ``bbam_paper`` the paper's literal text; each with
    #: and without the proposal refinement of Eq. 4 (not in the demo: slower)
    variants = {
        "bbam": ("BBAM, authors' code", {"preset": "official"}, True),
        "bbam_paper": ("BBAM, paper's text", {"preset": "paper"}, True),
        "bbam_refined": (
            "BBAM, authors' code + proposals",
            {"preset": "official", "refine": "proposals"},
            False,
        ),
        "bbam_paper_refined": (
            "BBAM, paper's text + proposals",
            {"preset": "paper", "refine": "proposals"},
            False,
        ),
    }
    variant_colours = {
        "bbam_paper": "yellowgreen",
        "bbam_refined": "darkgreen",
        "bbam_paper_refined": "olivedrab",
    }
    #: BBAM Tables 1, 3 and 4 (VOC 2012 val): instance AP with and without refinement, semantic mIoU
    #: (made with the authors' code, so they stand beside the official preset's rows)
    paper = {
        "bbam_refined": {
            "miou": 73.7,
            "ap25": 76.8,
            "ap50": 63.7,
            "ap70": 39.5,
            "ap75": 31.8,
            "ap": 33.4,
            "abo": 63.0,
        },
        "bbam": {"ap": 29.6, "ap50": 61.9, "ap75": 25.8},
    }

    def memory_bytes(self, settings: PseudoLabelSettings, height: int, width: int, n_objects: int) -> int:
        """With proposal refinement (Eq. 4) the proposals' grouping comes on top (as MCG + GrabCut's)."""
        own = super().memory_bytes(settings, height, width, n_objects)
        return own + (int(815 * height * width) if settings.refine == "proposals" else 0)

    def device_stage(self, ctx: LabelContext, items: Sequence[ImageBoxes]) -> list[list[ObjectResult] | None]:
        """The objects' BBAM results of each image (the batch optimised together); ``None`` per image
        with ``--maps-from`` (the CPU stage reads the stored maps)."""
        s = ctx.settings
        if s.maps_from:
            return [None] * len(items)
        tasks = [
            ObjectTask(
                image_tensor(it.image, ctx.device), torch.as_tensor(b), int(c), key=(it.record.image_id, k)
            )
            for it in items
            for k, (b, c) in enumerate(zip(it.boxes, it.labels, strict=True))
        ]
        cfg = s.bbam_config()
        results = explain(ctx.detector, tasks, cfg, ctx.mean, batch_size=ctx.batch_objects, engine=ctx.engine)
        # what the CPU stage reads: the full-size map and the facts, not the coarse mask or history
        by_key = {r.key: replace(r, mask=np.zeros((0, 0), np.float32), history={}) for r in results}
        return [[by_key[(it.record.image_id, k)] for k in range(len(it.boxes))] for it in items]

    def cpu_stage(
        self, ctx: LabelContext, item: ImageBoxes, staged: list[ObjectResult] | None
    ) -> ImageLabels:
        s = ctx.settings
        results = staged if staged is not None else stored_results(LabelsFolder(s.maps_from), item.record)
        return self.from_maps(s, item, results)

    def from_maps(
        self, settings: PseudoLabelSettings, item: ImageBoxes, results: Sequence[ObjectResult]
    ) -> ImageLabels:
        """One image's labels from its objects' BBAM results."""
        post = PostProcess.of(settings)
        h, w = item.shape
        proposals = mask_proposals(item.image, item.record.path, settings.mcg_dir) if post.refine else None
        insts, info, maps = [], [], []
        for b, c, sc, res in zip(item.boxes, item.labels, item.scores, results, strict=True):
            fg, ign, extra = post.label(item.image, res.bbam, b, res.stride, proposals, res.failed)
            obj = {
                "stride": res.stride,
                "n_positives": res.n_positives,
                "n_candidates": res.n_candidates,
                "iou_threshold": res.iou_threshold,
                "fallback": FAULT_FALLBACK if res.failed else res.fallback,
                "box_loss": res.final_box_loss,
                "cls_loss": res.final_cls_loss,
                **extra,
            }
            if res.failed:
                obj.update(failed=True, fault=res.fault, positives_fallback=res.fallback)
            if res.retried:
                obj["retried_fp32"] = True
            insts.append(InstanceLabel(int(c), np.asarray(b, np.float32), fg, ign, float(sc), obj))
            info.append(obj)
            maps.append(res.bbam)
        return ImageLabels(insts, info, {"bbam": np.array(maps, np.float16).reshape(-1, h, w)})

    def semantic(
        self, settings: PseudoLabelSettings, instances: list[InstanceLabel], height: int, width: int
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """As the paper: pixels claimed by two classes, and ignore bands, become 255 (the authors'
        code lets an instance whose box lies inside another's keep the overlap)."""
        contained = PostProcess.of(settings).contained_wins
        return instances_to_semantic(instances, height, width, contained), [i.fg for i in instances]


def stored_results(folder: LabelsFolder, rec) -> list[ObjectResult]:
    """The BBAM results of one image as a BBAM labels folder stored them (the coarse masks are not
    stored: ``mask`` is empty)."""
    insts, info = folder.read_image(rec.image_id)
    maps = folder.read_maps(rec.image_id)
    if len(maps) != len(insts):
        raise ValueError(f"{folder.maps_path(rec.image_id)}: {len(maps)} maps for {len(insts)} objects")
    results = []
    for k, (m, obj) in enumerate(zip(maps, info, strict=True)):
        failed = bool(obj.get("failed"))
        results.append(
            ObjectResult(
                key=(rec.image_id, k),
                mask=np.zeros((0, 0), np.float32),
                bbam=m,
                stride=float(obj["stride"]),
                n_positives=int(obj["n_positives"]),
                n_candidates=int(obj.get("n_candidates", 0)),
                iou_threshold=float(obj["iou_threshold"]),
                fallback=obj.get("positives_fallback") if failed else obj.get("fallback"),
                final_box_loss=float(obj["box_loss"]),
                final_cls_loss=float(obj["cls_loss"]),
                fault=obj.get("fault") or ("stored-as-failed" if failed else None),
                retried=bool(obj.get("retried_fp32")),
            )
        )
    return results
