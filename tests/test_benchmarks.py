"""The benchmark scripts run and report what docs/benchmarks.md quotes (no timings are asserted)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd

from conftest import E2E_TIMEOUT

ROOT = Path(__file__).resolve().parents[1]


def test_bench_jacobian_reports_ratios_agreement_and_roofline():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_jacobian.py"), "--device", "cpu",
         "--channels", "8,16,16", "--repeats", "1", "--threads", "1"],
        capture_output=True, text=True, timeout=E2E_TIMEOUT, check=True).stdout

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


GPU_CHECK = ROOT / "benchmarks" / "gpu_check.py"

# Runs a script as __main__ with the modules the GPU machine lacks made unimportable (Snakemake,
# scikit-dimension, mlxtend; tqdm and PyYAML too, which the script does without), as it will run there.
_WITHOUT_MISSING_MODULES = textwrap.dedent("""
    import importlib.abc, runpy, sys
    BLOCKED = ("snakemake", "skdim", "mlxtend", "tqdm", "yaml")
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
            return None
    sys.meta_path.insert(0, Block())
    for m in [m for m in sys.modules if m.split(".")[0] in BLOCKED]:
        del sys.modules[m]
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
""")


def _load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", GPU_CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_cpu_smoke_runs_every_section(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH"))
                                                       if p)}
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_MISSING_MODULES, str(GPU_CHECK), "--cpu-smoke",
                           "--threads", "1", "--out", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=E2E_TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["status"] == "complete" and report["schema"] == "gpu_check/1"
    assert {"started", "elapsed_s", "args", "environment", "models", "sections"} <= set(report)
    env_info = report["environment"]
    assert env_info["device"] == "cpu" and env_info["tqdm_stand_in"] is True
    assert env_info["config_source"].startswith("built-in")
    assert set(report["models"]) == {"default", "paper"}
    sections = report["sections"]
    assert set(sections) == {"correctness", "jacobian_throughput", "svd", "sampling", "training", "gpu_hours"}
    for name, section in sections.items():
        assert section["status"] == "ok", (name, section.get("error"))

    # CPU float32 (the pipeline's stages.model_jacobians) and float64 against the float64 reference
    rows = sections["correctness"]["rows"]
    assert {(r["net"], r["dtype"]) for r in rows} == {(n, d) for n in ("default", "paper")
                                                      for d in ("float32", "float64")}
    for r in rows:
        assert r["max_abs_ref"] > 1e-3  # the randomised network's Jacobian is not trivial
        assert r["max_rel_err"] < (1e-5 if r["dtype"] == "float32" else 1e-12), r
        assert r["r_t"] == r["r_t_ref"] and r["r_t_equal"], r
        assert r["calibration_ratio_rel_diff"] < 1e-5, r
    assert all(s["all_r_t_equal"] for s in sections["correctness"]["summary"].values())

    thr = sections["jacobian_throughput"]
    ok = [r for r in thr["rows"] if r["status"] == "ok"]
    assert {(r["net"], r["method"]) for r in ok} == {(n, m) for n in ("default", "paper")
                                                     for m in ("loop", "vmap", "retain", "pipeline")}
    assert all(r["seconds_per_jacobian"] > 0 for r in ok)
    assert all(r["max_rel_diff_vs_loop"] < 1e-5 for r in ok if "max_rel_diff_vs_loop" in r)
    assert thr["paper_jacobians"] == 640
    for ex in thr["extrapolated"].values():
        assert ex["pipeline_s"] > 0 and ex["best_s"] > 0 and ex["loop_s"] > 0

    svd = sections["svd"]
    assert svd["cpu"]["svd"]["median_s"] > 0 and svd["cpu"]["analyse_jacobian"]["median_s"] > 0
    assert {r["op"] for r in svd["rows"] if r["status"] == "ok"} == {"svd", "eigh"}
    for r in svd["rows"]:
        if r["op"] == "svd":
            assert r["r_t_equal"] and r["max_rel_diff_singular_values"] < 1e-8, r
    assert all(r["sequence_steps_per_s"] > 0 for r in sections["sampling"]["rows"])
    assert {r["mode"] for r in sections["training"]["rows"]} == {"float32", "float32_no_tf32", "bf16_autocast"}
    assert all(r["seconds_per_step"] > 0 for r in sections["training"]["rows"])
    hours = sections["gpu_hours"]
    assert hours["gpu_hours_float32"] > 0 and hours["gpu_hours_bf16_training"] > 0
    assert hours["preset"]["train_steps"] == 540000 and hours["preset"]["jacobians"] == 640

    markdown = (tmp_path / "gpu_check.md").read_text()
    assert all(f"## {name}" in markdown for name in sections)


def test_gpu_check_config_copies_match_the_yaml_files():
    # the copies the script falls back on where PyYAML is missing
    gpu_check = _load_gpu_check()
    assert gpu_check.builtin_configs() == gpu_check.yaml_configs()


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_floor_convergence_overrides_and_plot(tmp_path):
    fc = _load("floor_convergence")
    assert fc.parse_set(["model.parameterisation=eps", "train.t_sampling=mixture", "train.steps=10"]) == {
        "model": {"parameterisation": "eps"}, "train": {"t_sampling": "mixture", "steps": 10}}
    rows = [{"lever": lever, "steps": steps, "source": source, "t": t, "calibration_ratio": 1.0 - 0.1 / steps}
            for lever in ("eps", "x0") for steps in (250, 625, 1250, 2500)
            for source in ("heldout_noisy", "model_samples") for t in (0.01, 0.3)]

    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    fc.plot(tmp_path / "t.csv", tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_openmp_wait_benchmark_times_both_policies_concurrently_and_alone(tmp_path):
    out = tmp_path / "openmp_wait.csv"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "openmp_wait.py"), "--jobs", "2", "--threads",
                           "1", "--images", "1", "--repeats", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=E2E_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert "default/PASSIVE" in proc.stdout

    table = pd.read_csv(out)
    assert sorted(table.groupby(["concurrent_jobs", "policy"]).size().items()) == [
        ((1, "PASSIVE"), 1), ((1, "default"), 1), ((2, "PASSIVE"), 2), ((2, "default"), 2)]
    assert (table[["wall_s", "cpu_s"]] > 0).all().all()


def test_bench_jacobian_times_the_pytorch_peers_on_any_image_shape():
    """--peers: the PyTorch functions a user would call instead, on the same net and image (here 3 x 8 x 8,
    D = 192), each agreeing with the row loop, and the fastest of them over batch_jacobian."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_jacobian.py"), "--device", "cpu", "--channels", "8,16,16",
         "--repeats", "1", "--threads", "1", "--no-roofline", "--peers", "--image-shape", "3,8,8"],
        capture_output=True, text=True, timeout=E2E_TIMEOUT, check=True).stdout
    assert "D = 192" in out and "in_channels=3" in out
    for peer in ("p1", "p2", "p3"):
        diff, scale = map(float, re.search(rf"max \|\(a\) - \({peer}\)\| = (\S+)\s+\(max \|J\| = (\S+)\)", out).groups())
        assert scale > 1e-3 and diff < 1e-5 * max(1.0, scale), peer
    best = re.search(r"fastest PyTorch peer = (.+): peer/b =\s+([0-9.]+)", out)
    assert best and float(best.group(2)) > 0
    assert best.group(1) in {"loop: 192 x autograd.grad", "autograd.functional.jacobian(vectorize=True)",
                             "torch.func.jacrev", "torch.func.jacfwd"}
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_jacobian.py"), "--image-shape", "3,30,30"],
                         capture_output=True, text=True, timeout=E2E_TIMEOUT)
    assert bad.returncode == 2 and "--image-shape '3,30,30': expected C,H,W" in bad.stderr


def test_bench_lowrank_recovers_the_oracle_and_writes_its_table(tmp_path):
    """The matrix-free benchmark on a small oracle (D = 3 x 8 x 8 = 192): r_t exact, the subspace recovered, both
    routes timed, one row per D in the CSV (no timing asserted)."""
    out = tmp_path / "lowrank.csv"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_lowrank.py"), "--dims", "192",
                           "--rank", "4", "--exact-max", "192", "--threads", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=E2E_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "r_t exact and subspace within 1e-3 rad at every D: True" in proc.stdout
    row = pd.read_csv(out).iloc[0]
    assert row["D"] == 192 and row["r_lowrank"] == row["r_true"] == row["r_exact"] and row["max_angle_rad"] < 1e-3
    assert row["passes"] > 0 and row["seconds_exact"] > 0


def test_bench_products_times_both_products_and_the_exact_route_per_d(tmp_path):
    """The per-pass benchmark on two small shapes (D = 192 and 768, a narrow U-Net): one row per D with both
    products' ms per pass, the exact route where asked, the matrix-free estimates per k (no timing asserted)."""
    out = tmp_path / "products.csv"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_products.py"), "--dims", "192,768",
                           "--channels", "8,8,8", "--batch", "8", "--repeats", "1", "--exact-max", "192",
                           "--ks", "10", "--threads", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=E2E_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = pd.read_csv(out)
    assert table["D"].tolist() == [192, 768] and table["shape"].tolist() == ["3x8x8", "3x16x16"]
    assert (table[["jv_ms_per_pass", "vjp_ms_per_pass", "lowrank_seconds_est_k10"]] > 0).all().all()
    assert table["exact_seconds"].iloc[0] > 0 and math.isnan(table["exact_seconds"].iloc[1])
    assert table["D_vs_first"].tolist() == [1.0, 4.0]
