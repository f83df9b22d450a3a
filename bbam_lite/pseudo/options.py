"""Options a pseudo-label method declares itself, so that a method with options is one file.

A method lists them in its ``options`` (:class:`~bbam_lite.pseudo.methods.Method`)::

    options = (Option("alpha", float, 0.5, "how much of the box to keep"),)

and gets, with no other change, the ``pseudo-labels --alpha`` flag (:func:`add_option_flags`,
:func:`options_from_args`), the value in ``PseudoLabelSettings.options`` (defaults filled in,
checked) and in the labels folder's key (``settings.json``'s ``"options"``, written only for
methods that declare options). The method reads ``ctx.settings.options["alpha"]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: The types an option may have (JSON values, so that they can enter the labels folder's key).
TYPES = (bool, int, float, str)

#: The prefix of an option's argparse destination (no clash with the command's own arguments).
PREFIX = "method_option_"


@dataclass(frozen=True)
class Option:
    """One option of a method: ``--name`` (underscores as dashes) on the command line, ``name`` in
    ``settings.json``'s ``"options"``; ``choices`` restricts the values."""

    name: str
    type: type = float
    default: Any = None
    help: str = ""
    choices: tuple | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"option name {self.name!r} is not an identifier")
        if self.type not in TYPES:
            raise ValueError(f"option {self.name}: type must be one of bool, int, float, str")
        self.check(self.default)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> Any:
        """``value`` as this option stores it (an int is a float where floats are wanted); a
        one-line ``ValueError`` naming the flag for a value of another type or not in ``choices``."""
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise ValueError(f"{self.flag} must be {self.type.__name__}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{self.flag} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        return value


def resolve(method: str, declared: Iterable[Option], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every option ``method`` declares, in declaration order: the value given, else the default."""
    known = {o.name: o for o in declared}
    unknown = sorted(set(given) - set(known))
    if unknown:
        have = ", ".join(known) or "none"
        raise ValueError(f"method {method} has no option(s) {', '.join(unknown)} (its options: {have})")
    return {k: o.check(given[k]) if k in given else o.default for k, o in known.items()}


def add_option_flags(parser: argparse.ArgumentParser, methods: Iterable) -> None:
    """One flag per option name over ``methods`` (methods may share an option if they declare it
    alike); its value is None unless given, so the method's default applies."""
    owners: dict[str, list[str]] = {}
    options: dict[str, Option] = {}
    for m in methods:
        for o in m.options:
            if o.name in options and options[o.name] != o:
                raise ValueError(f"option {o.name}: declared differently by {owners[o.name][0]} and {m.name}")
            options[o.name] = o
            owners.setdefault(o.name, []).append(m.name)
    for name, o in options.items():
        text = f"{o.help} (--method {', '.join(owners[name])}; default {o.default})".lstrip()
        kwargs: dict[str, Any] = {"dest": dest(o), "default": None, "help": text.replace("%", "%%")}
        if o.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs.update(type=o.type, choices=o.choices)
        parser.add_argument(o.flag, **kwargs)


def options_from_args(args: argparse.Namespace, method) -> dict[str, Any]:
    """The options given on the command line for ``method``; a flag of another method's option is
    a one-line ``ValueError``."""
    mine = {o.name for o in method.options}
    given = {
        name[len(PREFIX) :]: v for name, v in vars(args).items() if name.startswith(PREFIX) and v is not None
    }
    other = sorted(k for k in given if k not in mine)
    if other:
        flags = ", ".join("--" + k.replace("_", "-") for k in other)
        raise ValueError(f"{flags}: not an option of --method {method.name}")
    return given


def dest(option: Option) -> str:
    """The argparse destination of an option's flag."""
    return PREFIX + option.name
