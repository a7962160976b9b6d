"""Code fingerprints: a figure's hash changes with its own code and the helpers it uses, and nothing else."""

from __future__ import annotations

import pytest

from score_geometry.provenance import code_fingerprint, source_fingerprint

SOURCE = '''"""Module docstring."""
import numpy as np

COLOURS = ("red", "blue")
SIZES = {"a": 1}


def _helper(x):
    return COLOURS[x]


def fig_a(x):
    # a comment
    return _helper(x) + 1


def fig_b(x):
    return SIZES["a"] * x
'''


def fp(source: str) -> dict[str, str]:
    return {name: source_fingerprint(source, name) for name in ("fig_a", "fig_b")}


def test_only_the_changed_figure_changes():
    base = fp(SOURCE)
    assert base["fig_a"] != base["fig_b"]
    own = fp(SOURCE.replace("_helper(x) + 1", "_helper(x) + 2"))
    assert own["fig_a"] != base["fig_a"] and own["fig_b"] == base["fig_b"]
    other = fp(SOURCE.replace('SIZES["a"] * x', 'SIZES["a"] * x * 2'))
    assert other["fig_a"] == base["fig_a"] and other["fig_b"] != base["fig_b"]


def test_helpers_and_constants_are_followed_transitively():
    base = fp(SOURCE)
    helper = fp(SOURCE.replace("return COLOURS[x]", "return COLOURS[-x]"))
    assert helper["fig_a"] != base["fig_a"] and helper["fig_b"] == base["fig_b"]
    const = fp(SOURCE.replace('("red", "blue")', '("red", "green")'))
    assert const["fig_a"] != base["fig_a"] and const["fig_b"] == base["fig_b"]


def test_set_up_changes_every_figure_but_comments_and_docstring_do_not():
    base = fp(SOURCE)
    setup = fp(SOURCE.replace("import numpy as np", "import numpy as np\nimport matplotlib"))
    assert setup["fig_a"] != base["fig_a"] and setup["fig_b"] != base["fig_b"]
    cosmetic = fp(SOURCE.replace("# a comment", "# another comment\n\n").replace("Module docstring", "Doc"))
    assert cosmetic == base


def test_installed_plots_module():
    names = ("fig2_features", "fig3_cosines", "fig3_spectrum", "fig3_local_dims", "fig4_overlaps")
    hashes = {code_fingerprint("score_geometry.plots", n) for n in names}
    assert len(hashes) == len(names) and all(len(h) == 16 for h in hashes)
    with pytest.raises(KeyError, match="no_such_figure"):
        code_fingerprint("score_geometry.plots", "no_such_figure")


def test_the_package_has_no_import_circle():
    """Every import between the package's modules, at the top or inside a function, forms a DAG (layers)."""
    import ast
    import graphlib

    from conftest import ROOT

    pkg = ROOT / "src" / "score_geometry"
    graph = {}
    for path in pkg.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(node.module.split(".")[0])
                else:
                    deps |= {a.name for a in node.names}
        graph[path.stem] = deps - {path.stem}
    assert {"arrays", "skew"} <= graph["spectra"] and "score_models" in graph["models"]  # imports were parsed
    list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError naming the circle
