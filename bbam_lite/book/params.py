"""Notebook parameters from ``-p NAME VALUE`` pairs.

Values are parsed as JSON, then as a Python literal (:func:`ast.literal_eval`), else kept as the
string itself; nothing is ever evaluated. They are checked before the first notebook starts: the
common parameters with :func:`bbam_lite.workspace.check_parameters`, the others against the type of
the default in the notebooks that declare them. A wrong value costs one line, not a failed batch.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable
from typing import Any

from bbam_lite.workspace import ParameterError, check_parameters

#: Parameters every chapter notebook declares (book conventions), with the notebooks' defaults.
COMMON_DEFAULTS: dict[str, Any] = {
    "profile": "lite",
    "dataset": "synthetic",
    "data_root": None,
    "device": "cpu",
    "seed": 0,
    "run_dir": "runs/book",
}


def parse_value(text: str) -> Any:
    """``1`` -> 1, ``0.5`` -> 0.5, ``true`` -> True, ``null`` / ``None`` -> None, ``[1, 2]`` -> a list,
    ``'"7"'`` -> the string "7"; anything that is neither JSON nor a literal stays a string."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``[(name, text), ...]`` -> ``{name: value}``; a name given twice is an error."""
    out: dict[str, Any] = {}
    for name, text in pairs:
        if not name.isidentifier():
            raise ParameterError(f"-p {name!r}: a parameter name must be a Python identifier")
        if name in out:
            raise ParameterError(f"-p {name}: given twice")
        out[name] = parse_value(text)
    return out


def check_common(values: dict[str, Any]) -> dict[str, Any]:
    """The common parameters with defaults filled in, validated (one-line :class:`ParameterError`)."""
    merged = {**COMMON_DEFAULTS, **{k: v for k, v in values.items() if k in COMMON_DEFAULTS}}
    check_parameters(*(merged[k] for k in COMMON_DEFAULTS))
    return merged


def literal_default(source: str) -> tuple[bool, Any]:
    """(True, value) when a notebook's default (its source text) is a literal, else (False, None)."""
    try:
        return True, ast.literal_eval(source)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None


def _compatible(value: Any, default: Any) -> bool:
    if default is None:
        return True
    if value is None:
        return False
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    if isinstance(default, list | tuple):
        return isinstance(value, list | tuple)
    return isinstance(value, type(default))


def check_declared(values: dict[str, Any], declared: dict[str, dict[str, str]]) -> None:
    """Every given parameter must be declared by some notebook (``declared``: notebook -> {name:
    default source}), and have the type of its literal default there."""
    known = {name for params in declared.values() for name in params}
    for name, value in values.items():
        if name not in known:
            raise ParameterError(
                f"parameter {name}: no selected notebook declares it (known: {', '.join(sorted(known))})"
            )
        if name in COMMON_DEFAULTS:
            continue  # checked by check_common, which knows the allowed values too
        for notebook, params in declared.items():
            if name not in params:
                continue
            ok, default = literal_default(params[name])
            if ok and default is not None and not _compatible(value, default):
                raise ParameterError(
                    f"parameter {name}={value!r}: expected {type(default).__name__} like its default "
                    f"{default!r} in {notebook}, got {type(value).__name__}"
                )
