"""Segmentation networks trained on pseudo labels (or ground truth), and the paper's evaluation.

* :mod:`.semantic`: DeepLab-v2 (ResNet + ASPP), cross-entropy with 255 ignored;
* :mod:`.instance`: torchvision Mask R-CNN whose mask loss skips the ignore regions;
* :mod:`.seed_growing`: DSRG-style growing of the labels into ignored pixels during training;
* :mod:`.targets`: training targets from a labels folder or from the ground truth;
* :mod:`.batches`: augmented training batches; :mod:`.train`: the resumable loop;
* :mod:`.evaluate`: mIoU, mask AP (pycocotools) and ABO; :mod:`.postprocess`: dense-CRF refinement;
* :mod:`.runs`: train a network into a run folder, score it or a labels folder (library calls);
* :mod:`.cli`: ``bbam-lite train-seg`` and ``bbam-lite evaluate`` over :mod:`.runs`.

Chapter 12's comparison of networks trained on each kind of label is
:mod:`bbam_lite.experiments.networks`.
"""
