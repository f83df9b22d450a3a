"""Experiments that chain the pipeline's stages: the demo and the method comparison
(:mod:`~bbam_lite.experiments.demo`) and the networks trained on each kind of label, the paper's
main tables (:mod:`~bbam_lite.experiments.networks`)."""

from bbam_lite.experiments.demo import (
    compare_methods,
    comparison_rows,
    demo_variants,
    format_table,
    run_demo,
)

__all__ = [
    "compare_methods",
    "comparison_rows",
    "demo_variants",
    "format_table",
    "run_demo",
]
