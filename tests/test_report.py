"""The Snakemake HTML report, tested as a web page: every figure and table renders in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from conftest import run_snakemake
from report_browser import _ink, check_report, chromium_path

pytestmark = pytest.mark.slow

FIGURE_LABELS = ("Fig. 1", "Fig. 2", "Fig. 3a", "Fig. 3b", "Fig. 3c", "Fig. 4", "Skew shares", "VAE and estimators",
                 "samples", "training loss", "VAE convergence")
TABLE_LABELS = ("noise-floor calibration", "summary per t", "stage benchmarks", "local-dimension estimators",
                "sample quality", "claims of the paper")
# The menu, top to bottom: the tables to read first, then the figures, the other tables and the run's costs.
CATEGORIES = ["0. Headline", "1. Figures", "2. Tables", "3. Run"]
HEADLINE = {"claims of the paper", "sample quality", "summary per t", "noise-floor calibration"}
# Maths typed as ASCII (sigma_t^2, J^T, r_t, ||H||, +-) where the text should show rendered maths.
ASCII_MATHS = re.compile(r"\b(?:sigma|kappa|alpha|Phi|[a-zA-Z])_[a-zA-Z0-9]\b|\^2|\^T\b|\|\||\+-")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed here when missing (needs root and apt, like `make system-deps`)."""
    if chromium_path() is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False, capture_output=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, timeout=900)
    path = chromium_path()
    if path is None:
        pytest.skip("chromium is not installed and cannot be installed here (needs root and apt-get)")
    return path


@pytest.fixture(scope="session")
def tiny_report(tiny_run):
    proc = run_snakemake(tiny_run, "--report", "results/tiny/report.html", "--configfile", "presets/tiny.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = tiny_run / "results" / "tiny" / "report.html"
    assert report.stat().st_size > 100_000  # self-contained: figures are embedded
    return report


def test_every_figure_and_table_renders(chromium, tiny_report):
    check = check_report(tiny_report)  # every category, as the menu lists them
    assert not check.page_errors, check.page_errors
    assert not check.blocked_requests, f"the report needs the network: {check.blocked_requests}"
    assert "run tiny" in check.home_text and "calibration" in check.home_text
    assert "System Message" not in check.home_text and not ASCII_MATHS.findall(check.home_text)
    assert check.categories == CATEGORIES, check.categories
    labels = [r.label.split(" | ")[0] for r in check.results]
    assert sorted(labels) == sorted(FIGURE_LABELS + TABLE_LABELS), labels
    assert {r.label for r in check.results if r.category == "0. Headline"} == HEADLINE
    for r in check.results:
        assert "System Message" not in r.caption, (r.label, r.caption)  # reST errors in the caption
        assert not ASCII_MATHS.findall(r.description), (r.label, ASCII_MATHS.findall(r.description))
        if r.kind == "img":
            assert r.width >= 100 and r.height >= 100, r  # tiny preset: dpi 60
            # drawn to fill the viewing area (about 830 px beside the menu), not at the PNG's pixel size
            assert r.shown_width >= 600 or r.shown_height >= 800, r
            assert r.ink > 0.01, f"{r.label} renders blank"
        else:
            assert r.label.split(" | ")[0] in TABLE_LABELS and r.table_rows >= 5, r
    captions = {r.label.split(" | ")[0]: r.caption for r in check.results}
    for label in set(FIGURE_LABELS) - {"samples", "training loss"}:  # the paper's figures and their extensions
        assert "Against the paper" in captions[label], label  # how to read it against the paper
    # Captions name the config that produced the figure (the tiny preset's plots.examples).
    assert "[1, 2]" in captions["Fig. 3a"] and "[1, 2]" in captions["Fig. 3b"]


def test_ink_detects_a_blank_screenshot():
    from io import BytesIO

    from PIL import Image

    def png(a):
        buf = BytesIO()
        Image.fromarray(a.astype(np.uint8)).save(buf, format="PNG")
        return buf.getvalue()

    assert _ink(png(np.full((50, 80), 255))) == 0.0
    lines = np.full((50, 80), 255)
    lines[::10] = 0
    assert _ink(png(lines)) == pytest.approx(0.1)
