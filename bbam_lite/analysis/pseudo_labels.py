"""Chapter 6 of the book: what each step from a BBAM to a pseudo label does, in sentences made from
this run's numbers (the ablation of :func:`bbam_lite.pseudo.ablation.rederive` and the labels'
``quality.json``), so that a re-execution with other results cannot leave a false sentence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from bbam_lite.analysis.tables import fmt_change, pick
from bbam_lite.pseudo.ablation import Variant

#: Training images of chapters 6 and 12's BBAM labels (chapter 12 trains its networks on them) where
#: the profile's ``label_images`` is too many: BBAM labels of two presets cost about 12 s an image
#: each on one core, so a cold lite run of either chapter stays within minutes and the two share
#: their labels (lite: 12 images, about 30 objects; the profile's ``label_images`` otherwise, so
#: ``full`` keeps the paper's sizes).
CHAPTER_IMAGES = {"lite": 12}

#: An object counts as better or worse under one variant than another when its IoU moves by more.
MARGIN = 0.02

PAPER, NO_CRF = Variant(), Variant(crf=False)
REFINED, QUANTILES = Variant(refine=True), Variant(rule="quantiles")
BOX_CRF = Variant(source="prior", theta_fg=0.5, theta_bg=0.5)
#: Exercise 6.2's rules on one map: the paper's thresholds, a lower theta_fg, the authors' quantiles.
RULES = {"θ 0.8 / 0.2": PAPER, "θ 0.5 / 0.2": Variant(theta_fg=0.5), "area quantiles": QUANTILES}


def chapter_images(ws: Any) -> int | None:
    """How many training images chapters 6 and 12 label with BBAM (and chapter 12 trains on) on this
    workspace's profile."""
    return CHAPTER_IMAGES.get(ws.profile.name, ws.profile.label_images)


def row(ablation: Mapping[str, dict], variant: Variant) -> dict:
    """The ablation's result for ``variant`` (found by its settings, not by its display name)."""
    want = asdict(variant)
    for res in ablation.values():
        if res["variant"] == want:
            return res
    raise KeyError(f"the ablation has no row for {variant}")


def sweep_rows(ablation: Mapping[str, dict]) -> list[dict]:
    """The rows that differ from the paper's recipe only in the thresholds, narrowest band first."""
    same = {k: v for k, v in asdict(PAPER).items() if k not in ("theta_fg", "theta_bg")}
    rows = [r for r in ablation.values() if all(r["variant"][k] == v for k, v in same.items())]
    return sorted(rows, key=lambda r: r["variant"]["theta_fg"] - r["variant"]["theta_bg"])


def _more(a: float, b: float, up: str = "above", down: str = "below", digits: int = 3) -> str:
    ra, rb = round(a, digits), round(b, digits)
    return up if ra > rb else down if ra < rb else "level with"


def steps_verdict(ablation: Mapping[str, dict]) -> str:
    """What the CRF, the proposal refinement and the quantile rule did to the paper's recipe here."""
    paper, bare, refined, quant = (row(ablation, v) for v in (PAPER, NO_CRF, REFINED, QUANTILES))
    d_ref = (refined["miou"] - paper["miou"], refined["mean_instance_iou"] - paper["mean_instance_iou"])
    helps = [round(d, 3) > 0 for d in d_ref]
    table4 = (
        "as in the paper's Table 4, where the refinement raises every AP"
        if all(helps)
        else "against the paper's Table 4, where the refinement raises every AP"
        if not any(helps)
        else "on one measure only, where the paper's Table 4 finds it raising every AP"
    )
    return (
        f"On these {paper['images']} images ({len(paper['objects'])} objects), the CRF "
        f"{fmt_change(paper['miou'] - bare['miou'])} mIoU against the bare thresholds on the same "
        f"map ({bare['miou']:.3f} to {paper['miou']:.3f}) and "
        f"{fmt_change(paper['mean_instance_iou'] - bare['mean_instance_iou'])} mean instance IoU "
        f"({bare['mean_instance_iou']:.3f} to {paper['mean_instance_iou']:.3f}). The proposal "
        f"refinement {fmt_change(d_ref[0])} mIoU and {fmt_change(d_ref[1])} mean instance IoU: "
        f"{table4}. The authors' quantile rule on the same maps scores {quant['miou']:.3f} mIoU, "
        f"{_more(quant['miou'], paper['miou'])} the paper's value rule ({paper['miou']:.3f})."
    )


def sweep_verdict(ablation: Mapping[str, dict]) -> str:
    """What widening the ignore band did to the ignored share and to the mIoU of the rest."""
    rows = sweep_rows(ablation)
    lo, hi = rows[0], rows[-1]

    def name(r: dict) -> str:
        return f"θ {r['variant']['theta_fg']:.1f} / {r['variant']['theta_bg']:.1f}"

    ignored = [r["ignore_fraction"] for r in rows]
    grows = all(b >= a for a, b in zip(ignored, ignored[1:], strict=False)) and ignored[-1] > ignored[0]
    d = hi["miou"] - lo["miou"]
    reading = (
        "the band took more wrong pixels than right ones"
        if round(d, 3) > 0
        else "the band took as many right pixels as wrong ones, or more"
    )
    return (
        f"From {name(lo)} to {name(hi)} the share of ignored pixels goes from "
        f"{lo['ignore_fraction']:.2%} to {hi['ignore_fraction']:.2%} "
        f"({pick(grows, 'rising with every step', 'not rising with every step')}), and the mIoU of "
        f"the remaining pixels {fmt_change(d)} ({lo['miou']:.3f} to {hi['miou']:.3f}): {reading}."
    )


def object_gains(base_rows: Sequence[dict], rows: Sequence[dict]) -> np.ndarray:
    """Per object, the instance IoU under ``rows`` minus under ``base_rows`` (same objects, order)."""
    for a, b in zip(base_rows, rows, strict=True):
        if (a["image_id"], a["index"]) != (b["image_id"], b["index"]):
            raise ValueError(
                f"object rows differ: {a['image_id']}/{a['index']} vs {b['image_id']}/{b['index']}"
            )
    return np.array([b["iou"] - a["iou"] for a, b in zip(base_rows, rows, strict=True)], float)


def box_crf_verdict(ablation: Mapping[str, dict]) -> str:
    """Where the points of the BBAM + CRF against CRF-on-the-box figure lie, against the paper."""
    box, paper, quant = (row(ablation, v) for v in (BOX_CRF, PAPER, QUANTILES))
    gain = object_gains(box["objects"], paper["objects"])
    better, worse = int((gain > MARGIN).sum()), int((gain < -MARGIN).sum())
    above = round(float(gain.mean()), 3) > 0
    q_vs_box = _more(quant["miou"], box["miou"])
    return (
        f"Here the points lie on average {pick(above, 'above', 'below')} the diagonal: BBAM + CRF "
        f"{fmt_change(float(gain.mean()))} instance IoU per object over the CRF on the box alone, "
        f"better by more than {MARGIN} on {better} of {len(gain)} objects and worse on {worse}; in "
        f"mIoU the paper's recipe scores {paper['miou']:.3f} against the box's {box['miou']:.3f}. "
        + pick(
            above,
            "As the paper claims, the detector's attribution adds to what colour alone finds.",
            "Against the paper's claim, on these images the map misleads the CRF more often than it helps.",
        )
        + f" The authors' quantile rule on the same maps ({quant['miou']:.3f} mIoU) is {q_vs_box} the "
        "CRF on the box: "
        + pick(
            q_vs_box == "above",
            "read by their order, the maps do add to colour alone.",
            "even read by their order, these maps add nothing over colour alone.",
        )
    )


def preset_verdict(
    ablation: Mapping[str, dict],
    baselines: Mapping[str, Mapping[str, Any]],
    names: Mapping[str, str],
    subject: str = "bbam",
) -> str:
    """The authors' code (its own maps, ``baselines[subject]``) against the baselines, and how much
    of its lead over the paper's recipe the rule makes on the same maps and how much its maps add."""
    official = baselines[subject]
    others = {k: q for k, q in baselines.items() if k != subject}
    paper, quant = row(ablation, PAPER), row(ablation, QUANTILES)

    def against(key: str) -> str:
        return ", ".join(
            f"{_more(official[key], q[key])} {names.get(k, k)} ({q[key]:.3f})" for k, q in others.items()
        )

    return (
        f"The authors' code as a whole (its own maps and its quantile rule: the table's last row) "
        f"scores {official['miou']:.3f} mIoU, {against('miou')}, with {official['ignore_fraction']:.1%} "
        f"of the pixels left ignored; its mean instance IoU ({official['mean_instance_iou']:.3f}) is "
        f"{against('mean_instance_iou')}. Against the paper's recipe ({paper['miou']:.3f} mIoU), the "
        f"quantile rule on the same maps {fmt_change(quant['miou'] - paper['miou'])} mIoU; the authors' "
        f"own maps under that rule change it by a further {official['miou'] - quant['miou']:+.3f}."
    )


def band_verdict(qualities: Mapping[str, Mapping[str, Any]]) -> str:
    """Exercise 6.1: what counting the ignored band as background costs each label set."""
    drops = {
        n: (q["ignore_fraction"], q["miou"] - q["miou_ignore_as_background"])
        for n, q in qualities.items()
        if "miou_ignore_as_background" in q
    }
    widest = max(drops, key=lambda n: drops[n][0])
    costliest = max(drops, key=lambda n: drops[n][1])
    return (
        "Counting the band as background costs "
        + "; ".join(f"{n} {d:.3f} mIoU (band {f:.1%})" for n, (f, d) in drops.items())
        + ". "
        + pick(
            widest == costliest,
            f"The widest band ({widest}) costs most: it held object pixels.",
            f"The widest band ({widest}) is not the costliest ({costliest}): part of it was true background.",
        )
    )


def rules_verdict(objects: Sequence[Mapping[str, Any]]) -> str:
    """Exercise 6.2: per object ``{"top": map maximum in the box, "iou": {rule of RULES: IoU}}``;
    on how many objects the quantile rule beats both value rules."""
    n = len(objects)
    *values, quant = RULES
    wins = sum(o["iou"][quant] > max(o["iou"][v] for v in values) for o in objects)
    low = sum(o["top"] < 0.8 for o in objects)
    return (
        f"Here {low} of the {n} maps stay below 0.8 everywhere in their box, and the quantile rule's "
        f"foreground matches the true mask better than both value rules on {wins} of the {n} objects."
    )


def size_halves(box_rows: Sequence[dict], paper_rows: Sequence[dict]) -> list[dict]:
    """Exercise 6.3: the objects split at the median box size, with BBAM + CRF's mean gain in each."""
    gain = object_gains(box_rows, paper_rows)
    size = np.array([r["area_ratio"] for r in paper_rows], float)
    small = size <= np.median(size)
    out = []
    for half, sel in (("smaller", small), ("larger", ~small)):
        if sel.any():
            out.append(
                {
                    "half": half,
                    "objects": int(sel.sum()),
                    "min_area": float(size[sel].min()),
                    "max_area": float(size[sel].max()),
                    "gain": float(gain[sel].mean()),
                    "better": int((gain[sel] > MARGIN).sum()),
                    # how far the half's mean would move without its most extreme object
                    "one_object": float(
                        np.abs(gain[sel] - gain[sel].mean()).max() / max(int(sel.sum()) - 1, 1)
                    ),
                }
            )
    return out


def size_verdict(halves: Sequence[Mapping[str, Any]]) -> str:
    """Exercise 6.3's conclusion from :func:`size_halves`."""
    if len(halves) < 2:
        return "With one object per half there is nothing to compare in this run."
    s, large = halves
    d = s["gain"] - large["gain"]
    which = "smaller" if d > 0 else "larger"
    one = max(s["one_object"], large["one_object"])
    if round(d, 3) == 0:
        return f"In this run BBAM + CRF fares the same for both halves (mean IoU gain {s['gain']:+.3f})."
    return (
        f"In this run BBAM + CRF fares better against the CRF on the box for the {which} objects "
        f"(mean IoU gain {s['gain']:+.3f} for the smaller half, {large['gain']:+.3f} for the larger): "
        + pick(
            abs(d) > one,
            f"a difference larger than leaving out one object moves a half's mean (up to {one:.3f}).",
            f"a difference within what leaving out one object moves a half's mean (up to {one:.3f}).",
        )
    )


def summary(
    ablation: Mapping[str, dict],
    baselines: Mapping[str, Mapping[str, Any]],
    names: Mapping[str, str],
    subject: str = "bbam",
) -> str:
    """The chapter's Summary bullets that state this run's numbers (Markdown list); ``subject``:
    the authors' code's row of ``baselines``."""
    paper, box, quant = (row(ablation, v) for v in (PAPER, BOX_CRF, QUANTILES))
    official = baselines[subject]
    best = max(baselines, key=lambda k: baselines[k]["miou"])
    return "\n".join(
        [
            f"- On {paper['images']} images the CRF on the box alone ({box['miou']:.3f} mIoU) "
            f"{pick(box['miou'] > paper['miou'], 'beats', 'does not beat')} the paper's recipe on "
            f"the same BBAMs ({paper['miou']:.3f}) and "
            f"{pick(box['miou'] > quant['miou'], 'beats', 'does not beat')} the authors' quantile "
            f"rule on them ({quant['miou']:.3f}).",
            f"- The authors' code as a whole (its own maps) scores {official['miou']:.3f} mIoU, "
            + pick(
                best == subject,
                "the best of the table's last three rows by mIoU.",
                f"below {names.get(best, best)} ({baselines[best]['miou']:.3f}), the best of the "
                "table's last three rows by mIoU.",
            ),
        ]
    )
