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
    names = {"fig2_features": "images", "fig3_cosines": "spectra", "fig3_spectrum": "spectra",
             "fig3_local_dims": "spectra", "fig4_overlaps": "spectra"}
    hashes = {code_fingerprint(f"score_geometry.plots.{module}", n) for n, module in names.items()}
    assert len(hashes) == len(names) and all(len(h) == 16 for h in hashes)
    with pytest.raises(KeyError, match="no_such_figure"):
        code_fingerprint("score_geometry.plots.spectra", "no_such_figure")


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


def _import_graph() -> dict[str, set[str]]:
    """Every import between the package's modules, subpackages included, at the top or inside a function,
    relative or absolute: module -> the modules it imports (dotted names; a package's __init__ counts as the
    package)."""
    import ast

    from conftest import ROOT

    src = ROOT / "src"
    modules = {".".join(p.relative_to(src).with_suffix("").parts).removesuffix(".__init__"): p
               for p in (src / "score_geometry").rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, *([base] if base else [])])
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            # the deepest module of the package each import names (a name imported from a module is that module)
            deps |= {next(t.rsplit(".", k)[0] for k in range(t.count(".") + 1) if t.rsplit(".", k)[0] in modules)
                     for t in targets if t.split(".")[0] == "score_geometry"}
        graph[name] = deps - {name}
    return graph


def test_no_import_circle_between_modules_and_subpackages():
    """The layers of the package, subpackages (plots/, baselines/, stages/) included: every import between its
    modules, at the top or inside a function, relative or absolute, forms a DAG; a package's __init__ counts as
    the package."""
    import graphlib

    graph = _import_graph()
    assert {"score_geometry.plots.registry", "score_geometry.plots.style"} <= graph["score_geometry.plots.spectra"]
    assert "score_geometry.baselines.registry" in graph["score_geometry.baselines.knn"]  # imports were parsed
    list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError naming the circle


def test_only_training_stages_reach_the_training_code():
    """Sampling, Jacobians, the score-model seam, the estimators and the toy's density never import the training
    engine or a trainer, not at the top, not inside a function, not through another module."""
    short = lambda name: name.removeprefix("score_geometry.")  # noqa: E731
    graph = {short(name): {short(d) for d in deps} for name, deps in _import_graph().items()}
    training = {"training", "training.engine", "train"}
    assert training <= graph.keys()
    kept_apart = ("sample", "jacobian", "score_models", "score", "sde", "networks", "models", "oracle", "spectra",
                  "baselines", "stages.jacobians", "toy.density")

    def reached(name: str) -> set[str]:
        seen, todo = set(), [name]
        while todo:
            for dep in graph[todo.pop()] - seen:
                seen.add(dep)
                todo.append(dep)
        return seen

    for name in [n for n in graph if any(n == k or n.startswith(k + ".") for k in kept_apart)]:  # subpackages too
        assert not reached(name) & training, f"{name} reaches the training code via {reached(name) & training}"
    assert {"training.engine", "training"} <= graph["train"] and "train" in graph["toy.experiment"]  # can fail
