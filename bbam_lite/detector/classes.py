"""A detector's classes matched to a dataset's, and its class head cut to the dataset's order.

A detector trained on other data (torchvision's COCO models: 91 category slots with
``__background__`` and ``N/A``) names its classes its own way. :func:`match_classes` finds each
dataset class among the detector's by name: case, spaces, ``_`` and ``-`` do not count, the VOC /
COCO / synthetic-set synonyms of :data:`SYNONYMS` are built in, and ``--class-map
DATASET=DETECTOR[,...]`` names the rest. :func:`select_classes` then puts a
:class:`ClassSelection` in place of the box predictor, so that the detector's outputs are indexed
by the dataset's labels (0 = background, 1.. = the dataset's classes) and the BBAM engine and
detection run unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from bbam_lite.compat import import_torchvision

import_torchvision()
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor  # noqa: E402

#: Names that mean the same class (VOC's, COCO's, the synthetic set's).
SYNONYMS: tuple[frozenset[str], ...] = tuple(
    frozenset(group)
    for group in (
        {"aeroplane", "airplane", "plane"},
        {"motorbike", "motorcycle"},
        {"sofa", "couch"},
        {"tvmonitor", "tv", "tv monitor"},
        {"diningtable", "dining table"},
        {"pottedplant", "potted plant"},
    )
)


class ClassMatchError(ValueError):
    """A dataset class the detector has no class for, or a bad ``--class-map``, in one line."""


def _key(name: str) -> str:
    return "".join(c for c in name.lower() if c not in " _-")


_SYNONYM_OF = {_key(n): min(_key(m) for m in group) for group in SYNONYMS for n in group}


def _canonical(name: str) -> str:
    return _SYNONYM_OF.get(_key(name), _key(name))


def parse_class_map(text: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"DATASET=DETECTOR[,...]"`` (``--class-map``) as a dict; a mapping is returned as a dict."""
    if text is None:
        return {}
    if isinstance(text, Mapping):
        return dict(text)
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, target = (s.strip() for s in item.partition("="))
        if not sep or not name or not target:
            raise ClassMatchError(
                f"--class-map: {item!r} is not DATASET_NAME=DETECTOR_NAME (e.g. tree=potted plant)"
            )
        out[name] = target
    return out


def match_classes(
    dataset_names: Sequence[str],
    detector_names: Sequence[str],
    class_map: str | Mapping[str, str] | None = None,
) -> list[int]:
    """The detector's class index of each dataset class (both lists with background first).

    Returns ``[0, i_1, ..., i_K]``: background, then the detector's index for dataset class k.
    """
    mapping = parse_class_map(class_map)
    det_index: dict[str, int] = {}
    for i, name in enumerate(detector_names):
        if i > 0 and name != "N/A":
            det_index.setdefault(_canonical(name), i)
    unknown = [n for n in mapping if n not in dataset_names[1:]]
    if unknown:
        raise ClassMatchError(
            f"--class-map names {unknown[0]!r}, which is not a dataset class "
            f"(the dataset's: {', '.join(dataset_names[1:])})"
        )
    out = [0]
    for name in dataset_names[1:]:
        target = mapping.get(name, name)
        index = det_index.get(_canonical(target))
        if index is None:
            if name in mapping:
                raise ClassMatchError(f"--class-map {name}={target}: the detector has no class {target!r}")
            raise ClassMatchError(
                f"dataset class {name!r} has no class of the detector's by that name; name one with "
                f"--class-map {name}=DETECTOR_NAME"
            )
        out.append(index)
    return out


class ClassSelection(FastRCNNPredictor):
    """A Faster R-CNN box predictor whose outputs are re-indexed to a dataset's classes.

    ``indices[k]`` is the detector's class for output k (``indices[0]`` = 0, background). The
    class logits of the selected classes are kept as they are; the background logit becomes the
    log-sum-exp of the background's and every unselected class's, so each selected class keeps the
    probability the full detector gives it (and "background" means "none of the dataset's
    classes"). Box deltas are those of the selected classes. Its weights (``state_dict``) are the
    full predictor's.
    """

    def __init__(self, predictor: FastRCNNPredictor, indices: Sequence[int]) -> None:
        nn.Module.__init__(self)
        self.cls_score = predictor.cls_score
        self.bbox_pred = predictor.bbox_pred
        n = predictor.cls_score.out_features
        keep = torch.as_tensor(list(indices[1:]), dtype=torch.long)
        rest = torch.as_tensor([i for i in range(n) if i not in set(indices[1:])], dtype=torch.long)
        self.register_buffer("keep", keep, persistent=False)
        self.register_buffer("rest", rest, persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, deltas = super().forward(x)
        background = torch.logsumexp(logits[:, self.rest], dim=1, keepdim=True)
        scores = torch.cat([background, logits[:, self.keep]], dim=1)
        deltas = deltas.reshape(len(deltas), -1, 4)
        deltas = torch.cat([deltas[:, :1], deltas[:, self.keep]], dim=1)
        return scores, deltas.reshape(len(deltas), -1)


def select_classes(model: nn.Module, indices: Sequence[int]) -> None:
    """Re-index ``model``'s (a torchvision Faster R-CNN's) outputs to ``indices`` in place."""
    predictor = model.roi_heads.box_predictor
    if isinstance(predictor, ClassSelection):
        raise ValueError("the detector's classes are already selected")
    model.roi_heads.box_predictor = ClassSelection(predictor, indices)
