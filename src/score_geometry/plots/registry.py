"""The list of figures: each figure's drawing function registers itself with `@figure("<name>")`, and the
workflow's plot rules (a ``figure`` param naming it), `make figures` and the report derive from that one list.

Registration is read two ways. At run time the decorator records a `FigureSpec` (`registered`). While
Snakemake builds the DAG the modules are parsed, not imported (no matplotlib, no torch on a login node):
`figure_code` finds the function decorated with a name and fingerprints its code, so editing one figure's
code reruns that figure alone.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..provenance import source_fingerprint

_HERE = Path(__file__).parent


@dataclass(frozen=True)
class FigureSpec:
    """One registered figure.

    Attributes:
        name: the figure's name: its plot rule's ``figure`` param and, by convention, its output file stem.
        draw: draw(**inputs, **options) -> matplotlib Figure.
        inputs: the rule's named inputs, read by file type (`score_geometry.io.read_input`): the function's
            positional-or-keyword parameters.
        options: the rule's plot options (its ``params:`` other than figure, code, dpi): the function's
            keyword-only parameters; those with a default may be left out.
    """

    name: str
    draw: Callable[..., Any]
    inputs: tuple[str, ...]
    options: tuple[str, ...]


_FIGURES: dict[str, FigureSpec] = {}


def figure(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as the figure `name` (returned unchanged).

    Its positional-or-keyword parameters are the plot rule's named inputs (tables as DataFrames, HDF5 files as
    (datasets, attrs), JSONL as records, a list of files as a list), its keyword-only parameters the rule's
    plot options. The name must be a string literal: `figure_code` reads it without importing the module.
    """
    def register(draw: Callable[..., Any]) -> Callable[..., Any]:
        known = _FIGURES.get(name)
        if known is not None and known.draw.__qualname__ != draw.__qualname__:
            raise ValueError(f"figure {name!r} is registered twice ({known.draw.__qualname__} and "
                             f"{draw.__qualname__}); give one of them another name")
        kinds = inspect.signature(draw).parameters.values()
        _FIGURES[name] = FigureSpec(
            name, draw, tuple(p.name for p in kinds if p.kind is p.POSITIONAL_OR_KEYWORD),
            tuple(p.name for p in kinds if p.kind is p.KEYWORD_ONLY))
        return draw
    return register


def _figure_names(tree: ast.Module) -> dict[str, str]:
    """Figure name -> function name, for the top-level functions of a module decorated `@figure("<name>")`."""
    found = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for dec in node.decorator_list:
            func = dec.func if isinstance(dec, ast.Call) else None
            named = isinstance(func, ast.Name) and func.id == "figure" or \
                isinstance(func, ast.Attribute) and func.attr == "figure"
            if named and dec.args and isinstance(dec.args[0], ast.Constant) and isinstance(dec.args[0].value, str):
                found[dec.args[0].value] = node.name
    return found


@functools.lru_cache(maxsize=None)
def figure_index() -> dict[str, tuple[str, str]]:
    """Every figure of this package, found by parsing its modules: name -> (module, function)."""
    index: dict[str, tuple[str, str]] = {}
    for path in sorted(_HERE.glob("*.py")):
        for name, func in _figure_names(ast.parse(path.read_text())).items():
            if name in index:
                raise ValueError(f"figure {name!r} is registered in both plots/{index[name][0]}.py and "
                                 f"plots/{path.stem}.py; give one of them another name")
            index[name] = (path.stem, func)
    return index


def _lookup(name: str) -> tuple[str, str]:
    index = figure_index()
    if name not in index:
        raise KeyError(f"no figure named {name}; registered: {', '.join(sorted(index))} (score_geometry/plots/, "
                       "@figure(\"<name>\") on its drawing function)")
    return index[name]


def registered(name: str) -> FigureSpec:
    """The `FigureSpec` of figure `name`, importing only the module that draws it."""
    module, _ = _lookup(name)
    importlib.import_module(f"{__package__}.{module}")
    return _FIGURES[name]


def figure_code(name: str) -> str:
    """16-hex-digit fingerprint of figure `name`'s drawing code, for its plot rule's params (so editing it reruns
    that figure alone), read without importing anything.

    It covers the decorated function and the module-level code it uses (`provenance.source_fingerprint`: its
    helpers and constants, transitively, and the module's imports), plus every name the module imports from a
    sibling module of this package (e.g. the palette of `style`; a name that module itself imports, such as
    ``plt``: all of that module): a change there reruns the figures of every module that imports it.

    Raises:
        KeyError: no figure has this name.
    """
    module, func = _lookup(name)
    source = (_HERE / f"{module}.py").read_text()
    parts = [source_fingerprint(source, func)]
    for node in ast.parse(source).body:
        sibling = _HERE / f"{node.module}.py" if isinstance(node, ast.ImportFrom) and node.level == 1 and \
            node.module else None
        if sibling is None or not sibling.is_file():
            continue
        text = sibling.read_text()
        for alias in node.names:
            try:
                parts.append(source_fingerprint(text, alias.name))
            except KeyError:  # imported there, not defined there (e.g. plt): all of that module counts
                parts.append(hashlib.sha256(ast.dump(ast.parse(text)).encode()).hexdigest())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
