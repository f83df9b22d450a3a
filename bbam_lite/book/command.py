"""``bbam-lite book run`` and ``bbam-lite book build``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

EXIT_FAILED_NOTEBOOK = 1


def cmd_book_run(args: argparse.Namespace) -> int:
    from bbam_lite.book.params import check_common, parse_pairs
    from bbam_lite.book.runner import BookRun, discover, ensure_kernel, select
    from bbam_lite.utils.profiles import profile_name
    from bbam_lite.workspace import PROFILES

    params = parse_pairs(args.param or [])
    if "profile" in params:
        raise ValueError("give the profile with --profile, not -p profile")
    params["profile"] = profile_name(args.profile, PROFILES)  # paper: full, as the notebooks call it
    if args.run_dir is not None:
        if "run_dir" in params:
            raise ValueError("give the run folder with --run-dir or -p run_dir, not both")
        params["run_dir"] = str(args.run_dir)
    check_common(params)  # a wrong profile or type costs one line before anything starts
    notebooks = select(discover(args.notebooks), args.only)
    if args.profile == "smoke":  # a minute of torch.compile per kernel would dominate smoke runs
        os.environ.setdefault("BBAM_LITE_EAGER_ROI_ALIGN", "1")
    run = BookRun(notebooks, args.out, params, args.kernel, jobs=args.jobs)  # checks every parameter first
    ensure_kernel(args.kernel)
    outcomes = run.run(force=args.force)
    return EXIT_FAILED_NOTEBOOK if any(o.status == "failed" for o in outcomes) else 0


def cmd_book_build(args: argparse.Namespace) -> int:
    from bbam_lite.book.render import build_book

    result = build_book(args.book, args.chapters, args.out)
    if result.missing:
        print(f"not in this build (no executed notebook yet): {', '.join(result.missing)}")
    print(f"built {len(result.chapters)} chapters: {result.index}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    book = subparsers.add_parser("book", help="the book: run its notebooks (papermill), build its HTML")
    sub = book.add_subparsers(dest="book_command", required=True, metavar="ACTION")

    run = sub.add_parser(
        "run",
        help="execute the chapter notebooks, several at a time (resumable)",
        description="Execute notebooks/NN-slug.ipynb with papermill, up to --jobs at a time in chapter "
        "order, and write executed copies to OUT (default book/chapters). Chapters running together "
        "make what they share (data, detector, labels, results) once, under a lock in the run folder. "
        "A notebook that finished earlier with the same parameters is skipped; a failed notebook is "
        "reported with its failing cell and the others still run (exit status 1). Run from the "
        "repository root.",
    )
    run.add_argument(
        "--profile",
        required=True,
        help="smoke (tests, seconds) | lite (the book, CPU) | full or paper (VOC/COCO, GPU)",
    )
    run.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="a notebook parameter (VALUE parsed as JSON or a Python literal, else a string), e.g. "
        "-p dataset voc -p data_root /data/VOCdevkit/VOC2012 -p device cuda; repeatable",
    )
    run.add_argument("--only", nargs="+", metavar="NN", help="only these chapters (numbers or names)")
    run.add_argument(
        "--run-dir", type=Path, default=None, help="run folder shared by the notebooks (default runs/book)"
    )
    run.add_argument("--out", type=Path, default=Path("book/chapters"), help="executed notebooks go here")
    run.add_argument("--notebooks", type=Path, default=Path("notebooks"), help="source notebooks folder")
    run.add_argument("--kernel", default="bbam-lite", help="Jupyter kernel name (registered if missing)")
    run.add_argument("--force", action="store_true", help="re-execute notebooks that finished earlier")
    run.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="chapters executed at the same time, each kernel on one thread (default: the cores this "
        "process may use, at most one per selected chapter); 1: one after another, with the threads "
        "the environment gives (OMP_NUM_THREADS=1 for the same numbers as a parallel run)",
    )
    run.set_defaults(func=cmd_book_run)

    build = sub.add_parser(
        "build",
        help="render the book to HTML offline (Jupyter Book 1.x, warnings are errors)",
        description="Render BOOK with the executed chapters into OUT/html (default book/_build/html). "
        "MathJax is served from the book itself; a page that would fetch anything from another host "
        "fails the build.",
    )
    build.add_argument("--book", type=Path, default=Path("book"), help="book folder (default book)")
    build.add_argument(
        "--chapters", type=Path, default=None, help="executed notebooks (default BOOK/chapters)"
    )
    build.add_argument("--out", type=Path, default=None, help="build folder (default BOOK/_build)")
    build.set_defaults(func=cmd_book_build)
