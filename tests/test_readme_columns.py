"""README's output-table list documents exactly the columns the analysis writes (issue 24: 11 columns of
diagnostics.parquet were missing). The tables come from `analysis.analyse_jacobians` on a small random
Jacobian, the function behind the analyse_spectra rule and the CLI, so a new column fails this test until
README's table names it, and a documented column that no longer exists fails it too."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import ROOT
from score_geometry.analysis import analyse_jacobians

TABLES = ("spectra", "local_dims", "overlaps", "diagnostics")


def _readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("### Output tables (`results/<run>/stats/`, tidy Parquet)")
    return text[start:text.index("\n#", start + 1)]


def documented_columns(table: str) -> set[str]:
    """The columns README's output-table list gives `table` (``<table>.parquet``): the key columns every table
    has (bold in the sentence above the list) and the backticked names of its row. ``_x`` after a name
    abbreviates that name with its last part replaced (`skew_share_inside` / `_outside` = skew_share_outside)."""
    section = _readme_section()
    keys = re.search(r"Every table has the key columns (.*?)\.\n\n", section, re.S).group(1)
    row = next(line for line in section.splitlines() if line.startswith(f"| `{table}.parquet` |"))
    cell = row.strip("|").split(" | ", 2)[2]
    names, last = set(re.findall(r"\*\*(\w+)\*\*", keys)), None
    for token in re.findall(r"`([^`]+)`", cell):
        if not re.fullmatch(r"_?[A-Za-z]\w*", token):
            continue  # a config key (analysis.kappa), not a column
        if token.startswith("_"):
            assert last is not None, f"{table}: README's {token!r} abbreviates no name before it"
            token = last.rsplit("_", 1)[0] + token
        else:
            last = token
        names.add(token)
    return names


@pytest.fixture(scope="module")
def analysis():
    rng = np.random.default_rng(0)
    J = rng.normal(size=(2, 2, 16, 16)) - 4 * np.eye(16)
    return analyse_jacobians(J, images=[0, 1], labels=[3, 7], t=[0.05, 0.3], sigma=[0.3, 0.8], run="readme",
                             kappa=0.1, kappa_sweep=[0.0, 0.1], progress=False)


@pytest.mark.parametrize("table", TABLES)
def test_readme_documents_every_column_of_each_table(analysis, table):
    written = set(getattr(analysis, table).columns)
    documented = documented_columns(table)
    missing, stale = sorted(written - documented), sorted(documented - written)
    assert not missing, f"{table}.parquet columns missing from README's output-table list: {missing}"
    assert not stale, f"README's output-table list documents {table}.parquet columns it does not have: {stale}"


def test_the_abbreviations_read_as_the_skew_columns():
    diagnostics = documented_columns("diagnostics")
    for block in ("inside", "cross", "outside"):
        for stem in ("skew_share", "skew_rel", "skew_share_w", "skew_rel_w"):
            assert f"{stem}_{block}" in diagnostics
    assert {"skew_rel_ratio", "skew_rel_ratio_w", "run", "image", "label", "t", "sigma"} <= diagnostics
