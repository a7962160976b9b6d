"""The deprecation policy in code: a public name that moves keeps its old import path for at least one minor
version, and using the old path emits a `DeprecationWarning` that names the new place (README.md, "Library";
CHANGELOG.md, "Deprecated").

Two kinds of shim:

* a module that moved or was split (``score_geometry.estimators``): a small module at the old path that calls
  `moved_module` at its top (the warning is emitted on import) and re-exports the old names from the new place;
* a name that left a module that still exists (``score_geometry.models.fit_score_model``): the module's
  ``__getattr__`` from `moved_names`, which warns on every access (``from … import name`` included) and
  imports the new place only then, so the old module's own imports, and its place in the layers, are unchanged.

No torch, no import of the package's other modules here: only the standard library.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

#: The release that deprecated the names below, and the first that may remove them (one minor version on).
SINCE, REMOVAL = "0.2.0", "0.3.0"

_PACKAGE_DIR = str(Path(__file__).resolve().parent) + os.sep


def _stacklevel() -> int:
    """The `warnings.warn` stack level of the first frame outside this package and the import machinery: the
    user's ``import`` line or attribute access, so the warning points there (and the default filters, which show
    a DeprecationWarning triggered in ``__main__``, show it)."""
    level, frame = 1, sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename
        if "importlib" in name and "_bootstrap" in name:
            pass  # `warnings.warn` itself skips the import machinery's frames when it counts levels
        elif str(Path(name).resolve()).startswith(_PACKAGE_DIR):
            level += 1
        else:
            break
        frame = frame.f_back
    return level


def message(old: str, new: str) -> str:
    """The one wording of every deprecation: the old path, the new one, since when and until when."""
    return (f"{old} is deprecated since score-geometry {SINCE} and will be removed in {REMOVAL}: use {new} "
            "instead (CHANGELOG.md)")


def warn(old: str, new: str) -> None:
    """Emit the DeprecationWarning of `message`, attributed to the user's code."""
    warnings.warn(message(old, new), DeprecationWarning, stacklevel=_stacklevel())


def moved_module(old: str, new: str) -> None:
    """Call at the top of the shim module `old` (its ``__name__``) that stands for `new`."""
    warn(f"the module {old}", new)


def moved_names(module: str, moves: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for names that moved out of `module`.

    Args:
        module: the old module's ``__name__``.
        moves: old name -> its new place, ``"package.module:name"`` (the name may differ from the old one). A
            value ``"package.module:name | what to use"`` serves an adapter (the object at the left) while the
            warning names what to use instead (the text at the right): for a function whose signature changed.
    """

    def __getattr__(name: str) -> Any:
        if name not in moves:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        target, _, use = (part.strip() for part in moves[name].partition("|"))
        where, _, attr = target.partition(":")
        warn(f"{module}.{name}", use or f"{where}.{attr}")
        return getattr(importlib.import_module(where), attr)

    return __getattr__
