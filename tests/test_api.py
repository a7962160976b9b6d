"""The public API stays put: every name README's library tables list imports from where README says, the package
exports what `__all__` promises, and every moved name keeps its old import path for a minor version, working,
with a DeprecationWarning that names the new place (README.md "Library", CHANGELOG.md "Deprecated")."""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import re
import subprocess
import sys
import tomllib
import types
import warnings

import pytest

import score_geometry
from conftest import E2E_TIMEOUT, ROOT

README = (ROOT / "README.md").read_text()
CHANGELOG = ROOT / "CHANGELOG.md"

# --- README's library tables ------------------------------------------------------------------------------------

#: Backticked words of a row (by its module cell) that are not Python names: config and checkpoint keys, a
#: returned function. Commands (``score-geometry analyse``), file names and config sections are skipped anyway.
NOT_NAMES = {"`score`": {"g(x, t)"}, "`networks`": {"architecture", "image_shape"}}
_FILE = re.compile(r"\.(smk|py|yaml|yml|md|json|jsonl|pt|pt2|parquet|csv|h5|npy)$")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def _table(header: tuple[str, ...]) -> list[list[str]]:
    """The rows of README's table whose first header cells are `header` (the separator row left out)."""
    lines = README.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and tuple(_cells(line)[: len(header)]) == header:
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(_cells(row))
            return rows
    raise AssertionError(f"README has no table with header {header}")


def _tokens(cell: str) -> list[tuple[str, int]]:
    """Each backticked word of a cell with its parenthesis depth in the cell's text (0: outside any)."""
    out, depth = [], 0
    for k, part in enumerate(re.split(r"(`[^`]*`)", cell)):
        if k % 2:
            out.append((part[1:-1], depth))
        else:
            depth = max(0, depth + part.count("(") - part.count(")"))
    return out


def _name(token: str) -> str | None:
    """The dotted name a token stands for (``@figure("name")`` -> figure, ``fit(state, ...)`` -> fit,
    ``plots/<kind>`` -> plots, ``toy/`` -> toy), or None for what is not a name (commands, files, keys)."""
    if _FILE.search(token):
        return None
    name = re.sub(r"/(<[^>]*>)?$", "", token.lstrip("@").split("(", 1)[0].strip())
    return name if re.fullmatch(r"[A-Za-z_][\w.]*\*?", name) else None


def _attr(obj, part: str):
    """`obj.part`: an attribute, a submodule of a package, or a dataclass field / annotated attribute of a
    class; raises AttributeError when there is none."""
    if isinstance(obj, types.ModuleType):
        try:
            return getattr(obj, part)
        except AttributeError:
            if hasattr(obj, "__path__"):
                return importlib.import_module(f"{obj.__name__}.{part}")
            raise
    if hasattr(obj, part):
        return getattr(obj, part)
    if inspect.isclass(obj) and any(part in getattr(c, "__annotations__", {}) for c in obj.__mro__):
        return part
    raise AttributeError(part)


def _resolve(name: str, contexts: list) -> object:
    """`name` (dotted; a trailing ``*`` is a pattern that must match at least one name) from the first context
    that has it."""
    for context in contexts:
        obj = context
        try:
            *parts, last = name.split(".")
            for part in parts:
                obj = _attr(obj, part)
            if last.endswith("*"):
                if not fnmatch.filter(dir(obj), last):
                    raise AttributeError(last)
                return obj
            return _attr(obj, last)
        except (AttributeError, ImportError):
            continue
    raise LookupError(f"{name!r} is importable from none of {[getattr(c, '__name__', c) for c in contexts]}")


def _check_row(module_cell: str, other_cells: list[str], not_names: frozenset[str] = frozenset()) -> list[str]:
    """Resolve every name of one table row: the modules of `module_cell` (at depth 0) from the package, the
    names in parentheses and in `other_cells` from those modules or from a module or class named before them
    in the row; a dotted name may also start at the package. Returns the failures."""
    failures, contexts = [], []

    def check(token: str, *, top: bool) -> None:
        name = None if token in not_names else _name(token)
        if name is None:
            return
        try:
            where = ([score_geometry] if top or "." in name else []) + contexts[::-1]
            obj = _resolve(name, where)
        except LookupError as e:
            failures.append(str(e))
            return
        if inspect.ismodule(obj) or inspect.isclass(obj):
            contexts.append(obj)

    for token, depth in _tokens(module_cell):
        check(token, top=depth == 0)
    for cell in other_cells:
        for token, _ in _tokens(cell):
            check(token, top=False)
    return failures


def _rows(header):
    return [pytest.param(row, id=re.sub(r"[`\s]", "", row[0])[:40]) for row in _table(header)]


@pytest.mark.parametrize("row", _rows(("module", "what")))
def test_every_name_in_readmes_module_table_imports_from_its_module(row):
    assert not _check_row(row[0], row[1:], frozenset(NOT_NAMES.get(row[0], ())))


@pytest.mark.parametrize("row", _rows(("layer", "modules")))
def test_every_module_and_name_in_readmes_layer_table_imports(row):
    assert not _check_row(row[1], row[2:])


def test_the_table_parser_sees_the_tables_and_catches_a_missing_name():
    # The tables are read (a parser that found nothing would pass every row), and a vanished name fails.
    modules = {re.sub(r"[`/]|<kind>", "", row[0]) for row in _table(("module", "what"))}
    assert {"sde", "spectra", "score_models", "train", "plots"} <= modules
    assert len(_table(("layer", "modules"))) >= 8
    assert _check_row("`spectra`", ["`analyse_jacobian(J, sigma)` → `Spectrum`, `no_such_name`"]) == [
        "'no_such_name' is importable from none of ['Spectrum', 'score_geometry.spectra']"]
    assert _check_row("`toy/` (`density`; `no_such_module`)", [])  # a submodule that is not there
    assert not _check_row("`sde`", ["`VPSDE`: `alpha(t)`, `scales(t)`", "`score-geometry analyse`, `plots.smk`"])


def test_readmes_python_examples_import():
    """Every ``from score_geometry… import …`` line of README's Python examples works."""
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()
             if re.match(r"\s*from score_geometry[\w.]* import ", line)]
    assert lines, "README has no Python example importing score_geometry"
    for line in lines:
        module, names = re.match(r"from (\S+) import (.+)", line).groups()
        for name in (n.strip() for n in names.split("#")[0].strip("() ").split(",")):
            assert _resolve(name, [importlib.import_module(module)]) is not None, line


def test_the_package_exports_every_name_of_all():
    for name in score_geometry.__all__:
        assert getattr(score_geometry, name) is not None, name
    assert set(score_geometry.__all__) <= set(dir(score_geometry))


# --- the shims of moved names -----------------------------------------------------------------------------------

#: Old module -> (where its names live now, the names it had).
MOVED_MODULES = {
    "score_geometry.estimators": ("score_geometry.baselines", [
        "CLASSICAL", "COLUMNS", "PAPER_VAE", "classical_table", "comparison_markdown", "comparison_table",
        "estimate_heldout", "exact_trace", "flipd", "hutchinson_trace", "knn_local_dims", "normal_bundle_dim",
        "normal_bundle_spectrum", "score_model_rt", "score_table", "stratified_subset"]),
    "score_geometry.plots_estimators": ("score_geometry.plots.baselines", [
        "OKABE_ITO", "PAPER_VAE", "converged_vae", "estimators_figure", "score_model_rt", "vae_convergence_figure"]),
    "score_geometry.plots_toy": ("score_geometry.plots.toy", [
        "CROSS", "NORMAL", "OKABE_ITO", "TANGENT", "VIEWS", "fig1_toy", "skew_shares_figure"]),
}

#: Old module.name -> the name's new place (module, name).
MOVED_NAMES = {
    "score_geometry.models.fit_score_model": ("score_geometry.train", "fit_score_model"),
    "score_geometry.models.KINDS": ("score_geometry.train", "KINDS"),
    "score_geometry.train.ARCHITECTURES": ("score_geometry.networks", "ARCHITECTURES"),
    "score_geometry.vae.clean_heldout_local_dims": ("score_geometry.baselines.tables", "clean_heldout_vae"),
}


#: Modules of 0.1.0 that became packages at the same path, and the names they defined (or re-exported) then.
BECAME_PACKAGES = {
    "score_geometry.plots": ["FEATURE_LABELS", "OKABE_ITO", "fig2_features", "fig3_cosines", "fig3_local_dims",
                             "fig3_spectrum", "fig4_overlaps", "plot_comparison", "sample_grid",
                             "training_loss_figure"],
    "score_geometry.stages": ["DTYPES", "MEMORY_FORMATS", "analyse_images", "denoised_at_times", "heldout_jacobians",
                              "jacobians_at_times", "memory_format", "model_jacobians", "noisy_heldout",
                              "shard_images"],
    "score_geometry.toy": ["CONTROLS", "SphereVMFMixture", "TRAINING_KEYS", "analyse_toy_controls",
                           "analyse_toy_field", "analyse_toy_model", "control_score_fn", "fibonacci_sphere",
                           "fit_toy_model", "injected_curl_normal", "langevin_over_rho", "learned_score_fn",
                           "log_sinhc", "summarise_toy", "tangent_normal_skew", "tangent_rotation", "toy_field",
                           "toy_train_config", "training_section"],
}


@pytest.mark.parametrize("module", sorted(BECAME_PACKAGES))
def test_modules_that_became_packages_keep_their_names(module):
    package = importlib.import_module(module)
    assert hasattr(package, "__path__")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no shim here: the names are the package's own
        for name in BECAME_PACKAGES[module]:
            assert getattr(package, name) is not None, name


def _fresh_import(name: str, monkeypatch) -> types.ModuleType:
    monkeypatch.delitem(sys.modules, name, raising=False)
    return importlib.import_module(name)


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_a_moved_module_imports_with_a_warning_naming_the_new_place(old, monkeypatch):
    new, names = MOVED_MODULES[old]
    with pytest.warns(DeprecationWarning, match=rf"{re.escape(old)} is deprecated since score-geometry 0\.2\.0 .*"
                                                rf"removed in 0\.3\.0: use {re.escape(new)} instead"):
        shim = _fresh_import(old, monkeypatch)
    target = importlib.import_module(new)
    for name in names:
        assert getattr(shim, name) is getattr(target, name), name
    assert sorted(names) == sorted(n for n in shim.__all__ if n != "plt")


def test_a_moved_modules_warning_points_at_the_importing_line(monkeypatch):
    monkeypatch.delitem(sys.modules, "score_geometry.estimators", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import score_geometry.estimators  # noqa: F401
    [w] = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert w.filename == __file__  # not the shim, not importlib: the default filters show it in a script


@pytest.mark.parametrize("old", sorted(MOVED_NAMES))
def test_a_moved_name_works_from_its_old_module_with_a_warning(old):
    module, name = old.rsplit(".", 1)
    new_module, new_name = MOVED_NAMES[old]
    expected = getattr(importlib.import_module(new_module), new_name)
    match = rf"{re.escape(old)} is deprecated .* use {re.escape(new_module)}\.{new_name} instead"
    with pytest.warns(DeprecationWarning, match=match):
        assert getattr(importlib.import_module(module), name) is expected
    with pytest.warns(DeprecationWarning, match=match):  # every use warns, `from … import` included
        namespace: dict = {}
        exec(f"from {module} import {name}", namespace)
    assert namespace[name] is expected
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        getattr(importlib.import_module(module), "no_such_name")


def _tiny_state(seed: int = 0):
    import torch

    from score_geometry.training import engine

    return engine.init_state(lambda: torch.nn.Linear(3, 2), lambda m: torch.optim.SGD(m.parameters(), lr=0.1),
                             seed=seed)


def test_train_save_state_and_resume_from_still_work_on_the_engine(tmp_path):
    """0.1's ``save_state(checkpoint_path, state, cfg, chash)`` and ``resume_from(checkpoint_path, state, chash,
    *, metrics_path, device)``: the same checkpoints as `training.engine.save` / `resume`, in both directions."""
    import torch

    from score_geometry import io, train
    from score_geometry.training import engine

    ckpt, metrics = tmp_path / "train_state.pt", tmp_path / "metrics.jsonl"
    state = _tiny_state()
    with torch.no_grad():
        state.model.weight.add_(1.0)
    state.step = 3
    with pytest.warns(DeprecationWarning, match=r"train\.save_state is deprecated .* use score_geometry\.training"
                                                r"\.engine\.save\(state, training\.engine\.Run\("):
        save_state = train.save_state
    save_state(ckpt, state, {"seed": 0}, "hash-a")
    assert io.load_checkpoint(ckpt)["config"] == {"seed": 0}

    for step in range(1, 6):
        io.append_jsonl(metrics, {"step": step})
    with pytest.warns(DeprecationWarning, match=r"train\.resume_from is deprecated .* use score_geometry\.training"
                                                r"\.engine\.resume\(state, training\.engine\.Run\("):
        resume_from = train.resume_from
    fresh = _tiny_state()
    resume_from(ckpt, fresh, "hash-a", metrics_path=metrics, device="cpu")
    assert fresh.step == 3 and torch.equal(fresh.model.weight, state.model.weight)
    assert [r["step"] for r in io.read_jsonl(metrics)] == [1, 2, 3]  # records past the resumed step dropped
    other = _tiny_state()
    resume_from(ckpt, other, "hash-b", metrics_path=metrics, device="cpu")  # another config: not resumed
    assert other.step == 0
    # The engine reads what save_state wrote, and resume_from what the engine wrote.
    run = engine.Run(ckpt, metrics, {"seed": 0}, "hash-a")
    via_engine = _tiny_state()
    engine.resume(via_engine, run)
    assert via_engine.step == 3
    via_engine.step = 4
    engine.save(via_engine, run)
    again = _tiny_state()
    resume_from(str(ckpt), again, "hash-a", metrics_path=str(metrics), device="cpu")
    assert again.step == 4


def test_the_models_shim_keeps_models_free_of_training_code():
    """models stays in its layer (no training code, tests/test_provenance.py): the shim imports `train` only when
    the old name is used."""
    code = ("import sys, warnings; import score_geometry.models as m; assert 'score_geometry.train' not in "
            "sys.modules; warnings.simplefilter('ignore'); m.fit_score_model; "
            "assert 'score_geometry.train' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=E2E_TIMEOUT)


# --- the version and the changelog ------------------------------------------------------------------------------

def test_version_is_bumped_and_in_the_changelog():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert score_geometry.__version__ == version == "0.2.0"
    text = CHANGELOG.read_text()
    assert re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", text, re.M)
    assert re.search(r"^## \[0\.1\.0\]", text, re.M)
    assert "keepachangelog.com" in text


def test_every_shim_is_in_the_changelog():
    text = CHANGELOG.read_text()
    for old in [*MOVED_MODULES, *MOVED_NAMES, "score_geometry.train.resume_from", "score_geometry.train.save_state"]:
        assert re.search(rf"`{re.escape(old)}[`(]", text), old


def test_vae_noise_scales_shim_keeps_its_clean_case():
    from score_geometry.sde import VPSDE

    with pytest.deprecated_call(match="VPSDE.scales"):
        from score_geometry.vae import noise_scales
    sde = VPSDE(0.1, 20.0)
    assert noise_scales(None, sde) == (1.0, 0.0) and noise_scales(0.3, sde) == sde.scales(0.3)
