"""The BBAM objective of one object (Eq. 5), written once: the algorithm's *target*.

    lambda * |M|_1 + lambda_TV * TV_beta(M)
        + 1_box * mean_o L_box(o) + 1_cls * mean_o L_cls(o)

with, for each positive proposal o of the object (t^c, p^c its clean outputs, c the object's class),
L_box(o) and L_cls(o) the head targets named by ``box_loss`` and ``cls_loss``, one callable each in
:mod:`bbam_lite.attribution.targets`:

* ``box_loss="sum"`` (paper):        L_box(o) = |t^c - f_box(Phi, o)|_1 over the 4 deltas;
* ``box_loss="half-mean"`` (authors' code): the mean over the 4 deltas, halved;
* ``cls_loss="all"`` (paper):        L_cls(o) = |p^c - f_cls(Phi, o)|_1 over all class probabilities;
* ``cls_loss="target-half"`` (authors' code): |p^c_c - f_cls(Phi, o)_c| / 2, the object's class only.

The optimisation (:func:`bbam_lite.attribution.bbam.optimise`, many objects at once), the plain
reference loop of ``scripts/bench_bbam.py`` and notebook 05 all compute the loss through these
functions, so weighting the terms is a change of this file, and a new term a new target. The
steps, in the order the engine runs them:

1. :func:`head_terms`: the per-proposal terms L_box(o), L_cls(o) (the two targets);
2. :func:`object_means`: their average per object (a plain mean for one object; with ``segments``
   and ``counts`` the average of each object's rows of a batch);
3. :func:`mask_l1` and :func:`tv_norm` (:func:`mask_terms`): the mask's terms;
4. :func:`weighted_total`: the weighted sum; :func:`bbam_objective` is steps 3 and 4 for one mask.

The floating-point operations and their order are part of the contract: the engine's pseudo labels
are byte-identical to those of the code this module replaced.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from bbam_lite.attribution.targets import HeadRows, get_target, target_names


class LossSettings(Protocol):
    """The settings the objective reads (:class:`bbam_lite.attribution.bbam.BBAMConfig` has them)."""

    lam: float
    lam_tv: float
    beta: float
    use_box: bool
    use_cls: bool
    tv_diagonal: bool
    box_loss: str
    cls_loss: str


def check_variants(box_loss: str, cls_loss: str) -> None:
    """Raise ``ValueError`` for a box or class target that is not registered."""
    boxes, classes = target_names("box"), target_names("cls")
    if box_loss not in boxes or cls_loss not in classes:
        raise ValueError(
            f"box_loss must be {'|'.join(boxes)} and cls_loss {'|'.join(classes)}, "
            f"got {box_loss!r} and {cls_loss!r}"
        )


def head_terms(
    cfg: LossSettings,
    deltas: torch.Tensor,
    probs: torch.Tensor,
    target_deltas: torch.Tensor,
    target_probs: torch.Tensor,
    labels: torch.Tensor | int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-proposal head terms ``(box_rows, cls_rows)``, each of shape (N,).

    ``deltas`` and ``target_deltas`` (N, 4) are already taken at each row's class; ``probs`` and
    ``target_probs`` (N, C) hold all classes; ``labels`` is each row's class (N,), or one class for
    all rows.
    """
    check_variants(cfg.box_loss, cfg.cls_loss)
    out, clean = HeadRows(deltas, probs, labels), HeadRows(target_deltas, target_probs, labels)
    return get_target("box", cfg.box_loss)(out, clean), get_target("cls", cfg.cls_loss)(out, clean)


def object_means(
    rows: torch.Tensor, segments: torch.Tensor | None = None, counts: torch.Tensor | None = None
) -> torch.Tensor:
    """The mean of per-proposal terms over each object's positives (mean_o in Eq. 5).

    Without ``segments`` all rows belong to one object: a scalar, the plain mean. With
    ``segments`` (N,) (each row's object, 0..K-1) and ``counts`` (K,) float (rows per object): the
    K per-object means, each the sum of its rows over its count.
    """
    if segments is None:
        return rows.mean()
    if counts is None:
        raise ValueError("object_means: segments need counts")
    return rows.new_zeros(len(counts)).index_add(0, segments, rows) / counts


def mask_l1(mask: torch.Tensor) -> torch.Tensor:
    """|M|_1 of a mask in [0, 1]: the sum of its cells (its gradient is 1 everywhere, also at 0)."""
    return mask.sum()


def tv_norm(mask: torch.Tensor, beta: float, diagonal: bool = False) -> torch.Tensor:
    """TV_beta(M): sum |dM|^beta over vertical and horizontal neighbour differences (and diagonals
    if asked: the authors' code adds the four diagonal differences)."""
    tv = (mask[1:, :] - mask[:-1, :]).abs().pow(beta).sum() + (mask[:, 1:] - mask[:, :-1]).abs().pow(
        beta
    ).sum()
    if diagonal:
        tv = tv + (mask[1:, 1:] - mask[:-1, :-1]).abs().pow(beta).sum()
        tv = tv + (mask[1:, :-1] - mask[:-1, 1:]).abs().pow(beta).sum()
    return tv


def mask_terms(cfg: LossSettings, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(|M|_1, TV_beta(M))`` of one coarse mask (h, w), with the config's beta and TV variant."""
    return mask_l1(mask), tv_norm(mask, cfg.beta, cfg.tv_diagonal)


def weighted_total(cfg: LossSettings, l1: Any, tv: Any, box: Any, cls: Any) -> Any:
    """lambda * l1 + lambda_TV * tv + 1_box * box + 1_cls * cls (tensors of any shape, arrays or
    floats: per object when they hold one value per object)."""
    return cfg.lam * l1 + cfg.lam_tv * tv + cfg.use_box * box + cfg.use_cls * cls


def bbam_objective(
    cfg: LossSettings, mask: torch.Tensor, box: torch.Tensor, cls: torch.Tensor
) -> torch.Tensor:
    """Eq. 5 for one object: its mask's terms and its head losses (from :func:`object_means`)."""
    l1, tv = mask_terms(cfg, mask)
    return weighted_total(cfg, l1, tv, box, cls)
