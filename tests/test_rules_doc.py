"""Snakemake as its maintainers expect (issue 24): every rule of both Snakefiles has a one-line docstring, so
`snakemake --list-rules` (and the report) describes it, and every rule that runs code names its conda env."""

from __future__ import annotations

import re

import pytest

from conftest import ROOT, run_snakemake

SNAKEFILES = {"Snakefile": 30, "workflow/compare.smk": 3 * 30 + 2}  # at least this many rules (x0_, eps_, oracle_)


@pytest.mark.parametrize("snakefile", list(SNAKEFILES))
def test_every_rule_is_described_by_list_rules(workflow_dir, snakefile):
    proc = run_snakemake(workflow_dir, "-s", snakefile, "--list-rules")
    assert proc.returncode == 0, proc.stderr
    rules = dict(re.fullmatch(r"(\w+)(?: \((.*)\))?", line).groups() for line in proc.stdout.splitlines() if line)
    assert len(rules) >= SNAKEFILES[snakefile], rules
    undescribed = sorted(name for name, doc in rules.items() if not doc)
    assert not undescribed, f"rules without a docstring in {snakefile}: {undescribed}"
    for name, doc in rules.items():
        assert "\n" not in doc and len(doc) <= 100 and doc.endswith("."), (name, doc)  # one line, a sentence


def _rule_blocks():
    """(file, rule name, body) of every rule of the workflow's Snakemake files (the Snakefile, workflow/*.smk such
    as compare.smk, workflow/rules/*.smk): a body is the `rule` line and the indented lines under it."""
    workflow = ROOT / "workflow"
    for path in [ROOT / "Snakefile", *sorted(workflow.glob("*.smk")), *sorted((workflow / "rules").glob("*.smk"))]:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if m := re.match(r"rule (\w+):", line):
                end = next((j for j in range(i + 1, len(lines)) if lines[j] and not lines[j][0].isspace()), len(lines))
                yield path.relative_to(ROOT), m.group(1), "\n".join(lines[i:end]) + "\n"


def test_every_rule_that_runs_code_has_a_conda_env_and_a_docstring():
    blocks = list(_rule_blocks())
    assert len(blocks) >= 33
    for path, name, body in blocks:
        assert re.match(r'rule \w+:\n    """[^\n]+"""\n', body), f"{path}: rule {name} does not open with a docstring"
        if re.search(r"^    (script|shell|run|notebook|wrapper):", body, re.M):
            assert re.search(r"^    conda:", body, re.M), f"{path}: rule {name} runs code without a conda: env"


def test_every_conda_env_names_the_env_file():
    """A rule's env is the one env file, named relative to the file the rule is in (as Snakemake resolves it);
    ENV is the file's own ENV or, in workflow/rules/, common.smk's."""
    def env(path):
        for source in (ROOT / path, ROOT / "workflow" / "rules" / "common.smk"):
            if m := re.search(r'^ENV = "([^"]+)"$', source.read_text(), re.M):
                return m.group(1)
        raise AssertionError(f"{path}: ENV is not defined")

    for path, name, body in _rule_blocks():
        if m := re.search(r"^    conda:\n        (.+)$", body, re.M):
            value = m.group(1).strip()
            rel = env(path) if value == "ENV" else value.strip('"')
            assert ((ROOT / path).parent / rel).resolve() == ROOT / "envs" / "score-geometry.yaml", (path, name, value)
