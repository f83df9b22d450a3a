"""The paper's analyses (Sections 4-5: Fig. 4, 6, 7, 8 and Tables 5, 6), one module each.

* :mod:`~bbam_lite.analysis.study`: the objects an analysis looks at, their BBAMs (read back from a
  pseudo-label folder of the notebooks' workspace) and pseudo-label quality for any instance labels.
* :mod:`~bbam_lite.analysis.heads`: box head only / cls head only / both (Fig. 4), the relative
  position R of high-attribution pixels (Fig. 6a/b) and per-head loss curves (Fig. 6c).
* :mod:`~bbam_lite.analysis.label_noise`: boxes expanded or contracted by up to 20% (Fig. 7a).
* :mod:`~bbam_lite.analysis.stride`: fixed strides against the adaptive s(a), by object size (Fig. 7b).
* :mod:`~bbam_lite.analysis.gradients`: SimpleGrad, SmoothGrad and Grad-CAM (Captum) for one
  proposal's box and class outputs, against BBAM (Fig. 7c, Fig. 8 and the two statistics of Sec. 5).
* :mod:`~bbam_lite.analysis.sensitivity`: lambda (Table 6) and theta_fg / theta_bg (Table 5).
* :mod:`~bbam_lite.analysis.plots` and :mod:`~bbam_lite.analysis.tables`: their figures and tables.

Everything returns plain JSON-able dicts and lists, so that a notebook can cache a result with
``ws.cached_json`` and draw it again without recomputing.
"""
