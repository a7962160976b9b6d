"""Fingerprints of library code, so a Snakemake rule reruns when the code it calls changes.

Snakemake reruns a job when its script file changes, but the figures' drawing code lives in this package
(`score_geometry.plots`), which Snakemake does not track. A plot rule passes ``plots.registry.figure_code(name)``
(built on ``code_fingerprint(module, name)``) as a ``params:`` value instead: the hash changes when the function's code, or any module-level function or constant
it uses (transitively), or the module's top-level set-up (imports, ``matplotlib.use``) changes — and not when
another figure's function, a comment or blank lines change. The module is parsed, not imported, so the
Snakefile stays fast.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from pathlib import Path


def _module_source(module: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(module)
    return Path(spec.origin).read_text()


def _top_level_names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def source_fingerprint(source: str, name: str) -> str:
    """16-hex-digit hash of the definition of `name` in the module `source` and everything it depends on.

    Included: the top-level definition of `name`; every top-level function, class or assignment whose name
    it references, recursively; and every top-level statement that defines no name (imports, calls such as
    ``matplotlib.use("Agg")``), since those set up every function. Code is compared as its syntax tree, so
    comments, formatting and the module docstring do not count; function docstrings do.

    Raises:
        KeyError: if `source` has no top-level definition of `name`.
    """
    tree = ast.parse(source)
    defs: dict[str, list[ast.stmt]] = {}
    setup: list[ast.stmt] = []
    for node in tree.body:
        names = _top_level_names(node)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the module docstring
        if isinstance(node, (ast.Import, ast.ImportFrom)) or not names:
            setup.append(node)
        for n in names:
            defs.setdefault(n, []).append(node)
    if name not in defs:
        raise KeyError(f"no top-level definition of {name!r}")
    seen, todo, used = {name}, [name], []
    while todo:
        for node in defs[todo.pop()]:
            if node in used:
                continue
            used.append(node)
            for sub in ast.walk(node):
                ref = sub.id if isinstance(sub, ast.Name) else None
                if ref in defs and ref not in seen:
                    seen.add(ref)
                    todo.append(ref)
    ordered = [node for node in tree.body if node in setup or node in used]
    text = "\n".join(ast.dump(node, annotate_fields=False) for node in ordered)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def code_fingerprint(module: str, name: str) -> str:
    """`source_fingerprint` of `name` in the installed `module` (e.g. ``"score_geometry.plots"``)."""
    return source_fingerprint(_module_source(module), name)
