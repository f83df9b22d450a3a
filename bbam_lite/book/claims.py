"""Sentences about this run, bound to its results, so that re-executing a chapter can never leave a
false sentence on its page.

A chapter states what its run shows in one of two ways:

* :func:`say` -- the sentence is made from the numbers, with :func:`pick` choosing the wording for
  each outcome (``pick(bbam < box, "beats", "does not beat")``); it appears as the cell's output;
* :func:`check` -- a hand-written sentence in the prose is guarded: the execution fails with
  :class:`ClaimError` when the run contradicts it (for claims that hold by construction, or that
  the chapter's design guarantees).

Both leave a record in the output's metadata (``bbam_lite_claim``), which the test over the
executed chapters reads. Sentences about the paper (its numbers and claims) stay hand-written and
cite it: they do not change with this run.
"""

from __future__ import annotations

from typing import Any

from bbam_lite.analysis.tables import fmt_change, pick  # noqa: F401 (a claim's words; written there)

#: The key of a claim's record in an output's metadata.
KEY = "bbam_lite_claim"


class ClaimError(AssertionError):
    """A sentence of the page that this run contradicts."""


def say(text: str) -> None:
    """Show ``text`` (Markdown) as what this run shows, made from its numbers."""
    from IPython.display import Markdown, display

    display(Markdown(text), metadata={KEY: {"kind": "generated", "text": text}})


def check(holds: Any, claim: str) -> None:
    """Guard the page's sentence ``claim``: fail the execution when this run contradicts it.

    The record (an empty output) says which sentence was checked, so the test over the executed
    chapters can count them; ``claim`` should quote the prose it guards closely enough to find it.
    """
    from IPython.display import display

    ok = bool(holds)
    display({"text/markdown": ""}, raw=True, metadata={KEY: {"kind": "check", "text": claim, "holds": ok}})
    if not ok:
        raise ClaimError(f"this run contradicts the page: {claim!r}")
