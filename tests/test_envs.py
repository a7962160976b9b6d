"""Dependency declarations: compatible ranges in pyproject.toml, exact pins in envs/constraints.txt, and the
conda env file deployed the way Snakemake deploys it (`--sdm conda`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from conftest import ROOT

ENV_FILE = ROOT / "envs" / "score-geometry.yaml"
POST_DEPLOY = ROOT / "envs" / "score-geometry.post-deploy.sh"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            out[_norm(req.name)] = spec.version
    return out


PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CONSTRAINTS = _pins((ROOT / "envs" / "constraints.txt").read_text().splitlines())


def _env_pip_section(path: Path = ENV_FILE) -> list[str]:
    deps = yaml.safe_load(path.read_text())["dependencies"]
    (pip,) = [d["pip"] for d in deps if isinstance(d, dict)]
    return pip


def test_pyproject_has_ranges_not_pins():
    """Installing the package into a user's environment must not replace its torch (e.g. a CUDA build)."""
    for extra in ("", *PYPROJECT["optional-dependencies"]):
        reqs = PYPROJECT["dependencies"] if not extra else PYPROJECT["optional-dependencies"][extra]
        for r in map(Requirement, reqs):
            assert not any(s.operator in ("==", "===") for s in r.specifier), f"{r} is pinned in pyproject.toml"


def test_every_declared_dependency_is_pinned_within_its_range():
    reqs = [*PYPROJECT["dependencies"], *(r for v in PYPROJECT["optional-dependencies"].values() for r in v)]
    for r in map(Requirement, reqs):
        version = CONSTRAINTS.get(_norm(r.name))
        assert version is not None, f"{r.name} has no pin in envs/constraints.txt"
        assert r.specifier.contains(version, prereleases=True), f"pin {r.name}=={version} outside {r.specifier}"


def test_every_imported_third_party_module_is_declared():
    """sklearn was imported but not declared: scan the package's imports against the declared names."""
    import_names = {"sklearn": "scikit-learn", "skdim": "scikit-dimension", "yaml": "pyyaml", "PIL": "pillow"}
    declared = {_norm(Requirement(r).name) for r in PYPROJECT["dependencies"]}
    # optional features (e.g. model.source: diffusers) import their extra lazily, with an install hint
    declared |= {_norm(Requirement(r).name) for extra, reqs in PYPROJECT["optional-dependencies"].items()
                 if extra != "test" for r in reqs}
    # pillow comes with matplotlib/torchvision; packaging with snakemake
    transitive = {"pillow", "packaging"}
    stdlib = set(sys.stdlib_module_names)
    found = set()
    for f in (ROOT / "src" / "score_geometry").rglob("*.py"):
        for m in re.finditer(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", f.read_text(), re.M):
            found.add(m.group(1))
    third_party = {n for n in found if n not in stdlib and n not in ("score_geometry", "__future__")}
    missing = {n for n in third_party if _norm(import_names.get(n, n)) not in declared | transitive}
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"


def test_env_file_pins_match_the_constraints_and_have_no_relative_paths():
    pip = _env_pip_section()
    for line in pip:
        assert not line.startswith(("-e", "-r", "-c", ".", "/", "file:")) and ".." not in line, (
            f"{line!r}: Snakemake copies the env file to .snakemake/conda/, so paths relative to it break")
    pins = _pins(pip)
    assert {_norm(Requirement(r).name) for r in PYPROJECT["dependencies"]} == set(pins)
    assert all(CONSTRAINTS[name] == version for name, version in pins.items())


def _scratch_env(tmp_path: Path) -> Path:
    """A venv standing in for the new conda env: this environment's packages are visible through a .pth (so
    the pinned requirements are already satisfied offline), but not this environment's .pth files, so the
    project's own editable install is not."""
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    py = env / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "parent_env.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return env


def _deploy(env_file: Path, workdir: Path, env: Path) -> subprocess.CompletedProcess:
    """What `snakemake --sdm conda` does with envs/score-geometry.yaml: copy it to .snakemake/conda/<hash>.yaml,
    have conda install its pip section from a requirements file written beside the copy (pip runs in that
    directory), then copy and run <env>.post-deploy.sh inside the env from the working directory."""
    conda_dir = workdir / ".snakemake" / "conda"
    conda_dir.mkdir(parents=True)
    copy = conda_dir / "0123abcd.yaml"
    shutil.copyfile(env_file, copy)
    req = conda_dir / "condaenv.xyz.requirements.txt"
    req.write_text("\n".join(_env_pip_section(copy)) + "\n")
    py = env / "bin" / "python"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    pip_env = {**clean, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run([str(py), "-m", "pip", "install", "-U", "-r", req.name, "--exists-action=b"],
                          cwd=conda_dir, capture_output=True, text=True, env=pip_env)
    if proc.returncode:
        return proc
    script = env_file.with_name(env_file.name.replace(".yaml", ".post-deploy.sh"))
    target = conda_dir / "0123abcd.post-deploy.sh"
    shutil.copyfile(script, target)
    # `conda run -p <env> bash <script>`: the env's bin first on PATH; offline, so no isolated build env
    run_env = {**pip_env, "PATH": f"{env / 'bin'}:{clean['PATH']}", "PIP_NO_BUILD_ISOLATION": "0"}
    return subprocess.run(["bash", str(target)], cwd=workdir, capture_output=True, text=True, env=run_env)


@pytest.mark.slow
def test_conda_env_deploys_as_snakemake_copies_it(tmp_path):
    env = _scratch_env(tmp_path)
    py = env / "bin" / "python"
    probe = [str(py), "-c", "import score_geometry, sys; sys.stdout.write(score_geometry.__file__)"]
    assert subprocess.run(probe, capture_output=True, cwd=tmp_path).returncode != 0  # not installed yet
    # the working directory is a checkout of the repository: a copy, so nothing is written into this one
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copyfile(ROOT / name, repo / name)
    proc = _deploy(ENV_FILE, repo, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    where = subprocess.run(probe, capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert Path(where).resolve().is_relative_to((repo / "src").resolve())


@pytest.mark.slow
def test_post_deploy_refuses_a_directory_that_is_not_the_repository(tmp_path):
    env = _scratch_env(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    proc = _deploy(ENV_FILE, tmp_path / "elsewhere", env)
    assert proc.returncode != 0 and "SCORE_GEOMETRY_SRC" in proc.stderr


@pytest.mark.slow
def test_the_old_editable_relative_path_breaks_when_copied(tmp_path):
    """The control: the env file as it was (`-e ..`) fails exactly where Snakemake puts it."""
    old = tmp_path / "old" / "score-geometry.yaml"
    old.parent.mkdir()
    text = ENV_FILE.read_text().replace("  - pip:\n", "  - pip:\n      - -e ..\n")
    old.write_text(text)
    shutil.copyfile(POST_DEPLOY, old.with_name("score-geometry.post-deploy.sh"))
    proc = _deploy(old, tmp_path / "wd", _scratch_env(tmp_path))
    # pip, run from .snakemake/conda/ as conda runs it, finds no project at "..", i.e. .snakemake/
    assert proc.returncode != 0 and ".snakemake (from -r" in proc.stderr and "not appear to be a Python project" \
        in proc.stderr


def test_make_lock_rewrites_both_pin_lists(tmp_path):
    """`make lock` (envs/update_pins.py) after an upgrade: the new version lands in the constraints and in the
    env file's pip section alike; the project itself and editables stay out."""
    sys.path.insert(0, str(ROOT / "envs"))
    try:
        import update_pins
    finally:
        sys.path.pop(0)
    constraints, env_file = tmp_path / "constraints.txt", tmp_path / "env.yaml"
    shutil.copyfile(ROOT / "envs" / "constraints.txt", constraints)
    shutil.copyfile(ENV_FILE, env_file)
    freeze = "\n".join(f"{name}=={version}" for name, version in CONSTRAINTS.items())
    freeze = freeze.replace(f"torch=={CONSTRAINTS['torch']}", "torch==9.9.9")
    freeze += "\nscore-geometry==0.1.0\n-e git+https://example.invalid/x.git#egg=x\nnewpkg==1.0\n"
    (tmp_path / "freeze.txt").write_text(freeze)
    update_pins.main(["--freeze", str(tmp_path / "freeze.txt"), "--constraints", str(constraints),
                      "--env-file", str(env_file)])
    pins = _pins(constraints.read_text().splitlines())
    assert pins["torch"] == "9.9.9" and pins["newpkg"] == "1.0" and "score-geometry" not in pins
    assert constraints.read_text().startswith("# The exact versions tested")
    env_pins = _pins(_env_pip_section(env_file))
    assert env_pins["torch"] == "9.9.9" and env_pins.keys() == _pins(_env_pip_section()).keys()
    assert yaml.safe_load(env_file.read_text())["name"] == "score-geometry"  # the rest of the file kept
