"""The benchmark scripts run and report what docs/benchmarks.md quotes (no timings are asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_jacobian_reports_ratios_agreement_and_roofline():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_jacobian.py"), "--device", "cpu",
         "--channels", "8,16,16", "--repeats", "1", "--threads", "1"],
        capture_output=True, text=True, timeout=300, check=True).stdout

    ratio = lambda name: float(re.search(rf"{name} .*=\s+([0-9.]+)", out).group(1))  # noqa: E731
    assert ratio("a/b") > 0 and ratio("b/c") > 0
    # the timed batch_jacobian computes the same matrix as the row loop
    diff, scale = map(float, re.search(r"max \|\(a\) - \(b\)\| = (\S+)\s+\(max \|J\| = (\S+)\)", out).groups())
    assert scale > 1e-3 and diff < 1e-5 * max(1.0, scale)
    # roofline: D backward passes of the same FLOPs; a positive peak; a bound on a/b
    row = float(re.search(r"one Jacobian row = ([0-9.]+) MFLOP", out).group(1))
    total = float(re.search(r"the Jacobian = ([0-9.]+) GFLOP", out).group(1))
    assert row > 0 and abs(total - 784 * row / 1e3) <= 0.05 + 1e-3 * total
    peak, blas, conv = map(float, re.search(
        r"float32 peak here = ([0-9.]+) GFLOP/s \(2048\^3 product: BLAS matmul ([0-9.]+), 1x1 convolution ([0-9.]+)\)",
        out).groups())
    assert peak == max(blas, conv) > 0
    assert re.search(r"largest a/b any exact method could reach here .*=\s+[0-9.]+", out)
