"""Every exception turnout defines derives from `TurnoutError`, so one `except` catches them all."""

from __future__ import annotations

import importlib
import pkgutil

import turnout
from turnout.errors import TurnoutError


def _all_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(turnout.__path__, "turnout.")]
    for name in names:
        if not name.endswith(".__main__"):  # those run a command when imported
            importlib.import_module(name)
    return names


def _subclasses(root: type[BaseException]) -> set[type[BaseException]]:
    out: set[type[BaseException]] = set()
    stack = [root]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub not in out:
                out.add(sub)
                stack.append(sub)
    return out


def test_every_exception_turnout_defines_derives_from_turnout_error() -> None:
    assert len(_all_modules()) > 100
    ours = {c for c in _subclasses(BaseException) if c.__module__.split(".")[0] == "turnout"} - {
        TurnoutError
    }
    names = {f"{c.__module__}.{c.__qualname__}" for c in ours}
    assert {  # the search finds them: this test cannot pass by seeing none
        "turnout.config.reader.ConfigError",
        "turnout.lifecycle.states.IllegalTransition",
        "turnout.routing.admission.Shed",
    } <= names
    strays = sorted(
        f"{c.__module__}.{c.__qualname__}" for c in ours if not issubclass(c, TurnoutError)
    )
    assert strays == []


def test_classes_that_were_value_errors_still_are() -> None:
    from turnout.fingerprint.compare import IncomparableRuns
    from turnout.lifecycle.states import IllegalTransition
    from turnout.migrate.records import SelectionError
    from turnout.store.query import RecordNotFound

    assert issubclass(IncomparableRuns, ValueError) and issubclass(SelectionError, ValueError)
    assert issubclass(IllegalTransition, RuntimeError)
    assert issubclass(RecordNotFound, LookupError)
