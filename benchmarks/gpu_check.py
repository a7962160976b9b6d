#!/usr/bin/env python
"""GPU check (issue: CUDA path): the pipeline's CUDA path measured in one prepared run of a few minutes.

Sections, each timed on the device with warm-up calls, ``torch.cuda.synchronize()`` around every timed
call and the median of a few repeats:

  correctness          exact score Jacobians of the default U-Net (config.yaml ``model:``) and of the
                       paper-sized U-Net (presets/paper.yaml ``model:``), randomly initialised with a fixed
                       seed, at a few x_t: float32 through the pipeline's own entry point
                       (``stages.model_jacobians``, TF32 off) and float64, against a float64 CPU reference:
                       max relative error, and r_t (``spectra.analyse_jacobian``) and the calibration ratio
                       (``analysis.calibration_ratio``) of each against the reference's;
  jacobian_throughput  seconds per Jacobian for each method (``vmap``, ``retain``, the row-by-row
                       ``autograd.grad`` loop of benchmarks/bench_jacobian.py), chunk size and memory
                       format, and for the pipeline's path; the time of the paper's 640 Jacobians;
  svd                  the float64 SVD and symmetric eigendecomposition of one Jacobian on the device
                       (``torch.linalg``) against the CPU's (``numpy.linalg``, as ``analyse_jacobian``);
  sampling             Euler–Maruyama throughput (sequences x steps per second) through
                       ``sample.sample_sequences`` (the loop ``sample_from_checkpoint`` runs);
  training             seconds per ``train.train_step`` at the paper's batch 2048: float32 under torch's
                       defaults (what the pipeline runs), float32 with TF32 off, bf16 autocast;
  gpu_hours            the paper preset's GPU-hours from those: train.steps x time per step + sampling +
                       Jacobians (+ the CPU time of their analysis).

The JSON (``gpu_check.json``) and a Markdown summary (``gpu_check.md``) are rewritten atomically after every
section, so a run killed by a time limit still leaves what it measured; a failing section records its
traceback and the others still run. Progress goes to stderr with timestamps. ``--budget-s`` bounds the
whole run: a section (or a cell of one) that would start after the budget is marked ``skipped``.

Needs only torch, numpy, pandas and h5py besides the project's ``src/`` (no Snakemake, scikit-dimension,
mlxtend; PyYAML and tqdm are used when present: without PyYAML the model and preset sections come from the
copies below, which tests/test_benchmarks.py keeps equal to config.yaml and presets/paper.yaml; without tqdm
a do-nothing stand-in lets the library modules import).

Usage:
    PYTHONPATH=src python3 benchmarks/gpu_check.py --out $OUT        # on a GPU machine, ~3-5 min
    PYTHONPATH=src python3 benchmarks/gpu_check.py --cpu-smoke --out /tmp/gpu_check   # tiny, CPU, < 1 min
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import importlib.machinery
import math
import os
import platform
import statistics
import sys
import time
import traceback
import types
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("correctness", "jacobian_throughput", "svd", "sampling", "training", "gpu_hours")
NETS = ("default", "paper")
TRAIN_MODES = ("float32", "float32_no_tf32", "bf16_autocast")


def _install_tqdm_stand_in() -> bool:
    """Make ``from tqdm.auto import tqdm`` work where tqdm is not installed; True if a stand-in was installed.

    score_geometry's analysis, train, sample and stages modules import tqdm at module level for progress
    bars that this script turns off; a GPU machine's bare python may lack it.
    """
    try:
        import tqdm.auto  # noqa: F401
        return False
    except ImportError:
        pass

    class _NoBar:
        def __init__(self, iterable=None, *args, **kwargs) -> None:
            self.iterable = iterable

        def __iter__(self):
            return iter(self.iterable if self.iterable is not None else ())

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> bool:
            return False

        def __getattr__(self, name: str) -> Callable[..., None]:  # update, close, set_postfix, ...
            return lambda *args, **kwargs: None

    package, auto = types.ModuleType("tqdm"), types.ModuleType("tqdm.auto")
    for module in (package, auto):  # torch._dynamo calls importlib.util.find_spec("tqdm"): needs a __spec__
        module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None)
    package.tqdm = auto.tqdm = _NoBar
    package.auto = auto
    sys.modules["tqdm"], sys.modules["tqdm.auto"] = package, auto
    return True


TQDM_STAND_IN = _install_tqdm_stand_in()

# Only modules whose imports the GPU machine has (torch, numpy, pandas, h5py): no datasets/estimators/vae.
from score_geometry import io  # noqa: E402
from score_geometry.analysis import calibration_ratio  # noqa: E402
from score_geometry.jacobian import (default_chunk_size, default_method, no_tf32,  # noqa: E402
                                     preferred_memory_format, score_jacobian)
from score_geometry.models import score_fn_from_checkpoint  # noqa: E402
from score_geometry.runtime import tune_allocator  # noqa: E402
from score_geometry.sample import sample_sequences, time_grid  # noqa: E402
from score_geometry.sde import VPSDE  # noqa: E402
from score_geometry.spectra import analyse_jacobian, local_dimension  # noqa: E402
from score_geometry.stages import model_jacobians  # noqa: E402
from score_geometry.train import build_model, init_state, train_step  # noqa: E402

# ----------------------------------------------------------------------------------------------------------
# configuration: config.yaml, and presets/paper.yaml merged over it
# ----------------------------------------------------------------------------------------------------------

#: The config sections this script reads (None: every key).
KEPT_KEYS: dict[str, tuple[str, ...] | None] = {
    "sde": None, "model": None, "train": None, "sample": None, "jacobian": None, "analysis": ("kappa",),
    "calibration": None}

#: Copies of config.yaml's sections in KEPT_KEYS, for machines without PyYAML (a test keeps them equal).
BUILTIN_DEFAULT: dict[str, dict[str, Any]] = {
    "sde": {"beta_min": 0.1, "beta_max": 20.0},
    "model": {"source": "train", "path": None, "kwargs": {}, "score_model": "unet", "oracle_rank": 16,
              "parameterisation": "eps", "channels": [32, 64, 64],
              "num_res_blocks": 1, "attention": False, "dropout": 0.0, "groups": 8},
    "train": {"steps": 2500, "batch_size": 64, "lr": 1.0e-3, "warmup_steps": 100, "ema_decay": 0.999,
              "grad_clip": 1.0, "t_min": 1.0e-5, "t_sampling": "mixture", "loss": "native",
              "checkpoint_every": 250, "log_every": 50},
    "sample": {"n_images": 128, "batch_size": 128, "n_steps": 1000, "t_end": 1.0e-3,
               "times": [0.01, 0.03, 0.05, 0.15, 0.3], "seed": 1},
    "jacobian": {"n_images": 128, "shards": 8, "chunk_size": None, "dtype": "float32", "method": "auto",
                 "memory_format": "auto"},
    "analysis": {"kappa": 0.1},
    "calibration": {"n_images": 8, "seed": 2},
}

#: Copies of presets/paper.yaml's values in those sections (merged over BUILTIN_DEFAULT).
BUILTIN_PAPER_OVERRIDES: dict[str, dict[str, Any]] = {
    "model": {"parameterisation": "eps", "channels": [64, 128, 128], "num_res_blocks": 2, "attention": True},
    "train": {"steps": 540000, "batch_size": 2048, "lr": 3.0e-4, "warmup_steps": 5000, "ema_decay": 0.9999,
              "loss": "native", "t_sampling": "uniform", "checkpoint_every": 5000, "log_every": 500},
    "sample": {"n_images": 128, "batch_size": 128, "n_steps": 1000, "times": [0.01, 0.03, 0.05, 0.15, 0.3]},
    "jacobian": {"n_images": 128, "shards": 16},
    "calibration": {"n_images": 32},
}


def _merge(base: dict, over: dict) -> dict:
    """``over`` merged into a copy of ``base``, recursively (as Snakemake merges --configfile)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _kept(cfg: dict) -> dict:
    return {s: {k: v for k, v in cfg.get(s, {}).items() if keys is None or k in keys}
            for s, keys in KEPT_KEYS.items()}


def builtin_configs() -> tuple[dict, dict]:
    """(default, paper) config sections from the copies in this file."""
    return copy.deepcopy(BUILTIN_DEFAULT), _kept(_merge(BUILTIN_DEFAULT, BUILTIN_PAPER_OVERRIDES))


def yaml_configs(root: Path = ROOT) -> tuple[dict, dict]:
    """(default, paper) config sections read from ``config.yaml`` and ``presets/paper.yaml`` (needs PyYAML)."""
    import yaml

    default = yaml.safe_load((root / "config.yaml").read_text())
    paper = _merge(default, yaml.safe_load((root / "presets" / "paper.yaml").read_text()))
    return _kept(default), _kept(paper)


def load_configs() -> tuple[dict, dict, str]:
    """(default, paper, source): from the YAML files when PyYAML and the files are there, else the copies."""
    try:
        default, paper = yaml_configs()
        return default, paper, "config.yaml + presets/paper.yaml"
    except (ImportError, OSError):
        default, paper = builtin_configs()
        return default, paper, "built-in copies in benchmarks/gpu_check.py (no PyYAML or no config files)"


# ----------------------------------------------------------------------------------------------------------
# run-time helpers: clock, report, timing
# ----------------------------------------------------------------------------------------------------------


class Clock:
    """Wall clock of the run: elapsed time, what is left of the budget, timestamped progress on stderr."""

    def __init__(self, budget_s: float) -> None:
        self.t0 = time.perf_counter()
        self.budget_s = budget_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def log(self, msg: str) -> None:
        now = datetime.datetime.now().strftime("%H:%M:%S")
        print(f"[gpu_check {now} +{self.elapsed():6.1f}s] {msg}", file=sys.stderr, flush=True)


class Report:
    """The JSON report and its Markdown rendering, both rewritten atomically by `save`."""

    def __init__(self, out_dir: Path, clock: Clock, data: dict) -> None:
        self.out_dir, self.clock, self.data = out_dir, clock, data
        self.json_path, self.md_path = out_dir / "gpu_check.json", out_dir / "gpu_check.md"

    def save(self) -> None:
        self.data["elapsed_s"] = round(self.clock.elapsed(), 2)
        io.write_json(self.json_path, self.data)
        io.write_text(self.md_path, render_markdown(self.data))


class BudgetExceeded(Exception):
    """Raised inside a section when the run's time budget is spent; what was measured is kept."""


def make_sync(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def timed(fn: Callable[[], Any], *, sync: Callable[[], None], repeats: int, warmup: int = 1) -> dict:
    """Median, min and max seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
        sync()
    times = []
    for _ in range(max(1, repeats)):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": len(times),
            "warmup": warmup}


@contextlib.contextmanager
def peak_memory(device: torch.device, into: dict):
    """Record the peak device memory allocated inside the block (GiB) as ``into["peak_mem_gib"]``."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        yield
    finally:
        if device.type == "cuda":
            into["peak_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def _record_failure(row: dict, err: BaseException) -> None:
    """Mark one timed cell as failed (an OOM or another error) so the section goes on with the next."""
    row["status"] = "oom" if _is_oom(err) else "error"
    row["error"] = f"{type(err).__name__}: {str(err)[:300]}"


# ----------------------------------------------------------------------------------------------------------
# the networks and inputs
# ----------------------------------------------------------------------------------------------------------


def random_checkpoint(cfg: dict, *, seed: int, init_std: float) -> dict:
    """A checkpoint dict as `train.final_checkpoint` writes it, with a randomly initialised U-Net as the EMA.

    The U-Net zero-initialises its last convolutions (identity residual blocks, zero output), which would make
    every Jacobian trivial; those weights are drawn from N(0, init_std^2) instead, as bench_jacobian.py does.
    """
    torch.manual_seed(seed)
    model = build_model(cfg["model"])
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() and p.abs().max() == 0:
                p.normal_(0.0, init_std)
    return {"kind": "unet", "step": 0, "config": {"model": dict(cfg["model"]), "sde": dict(cfg["sde"])},
            "state": {"ema": model.state_dict()}}


def noisy_inputs(n: int, t: list[float], sde: VPSDE, *, seed: int, size: int = 28) -> np.ndarray:
    """x_t = alpha_t x_0 + sigma_t eps with x_0 ~ U[-1, 1]^(size x size): (n, T, size, size) float32."""
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.rand((n, size, size), generator=gen, dtype=torch.float64) * 2 - 1
    out = []
    for tj in t:
        tt = torch.tensor(tj, dtype=torch.float64)
        out.append(sde.alpha(tt) * x0 + sde.sigma(tt) * torch.randn(x0.shape, generator=gen, dtype=torch.float64))
    return torch.stack(out, dim=1).float().numpy()


def sigma_of(sde: VPSDE, t: float) -> float:
    return float(sde.sigma(torch.tensor(t, dtype=torch.float64)))


def spectrum_summary(J: np.ndarray, sigma: float, kappa: float) -> dict:
    """r_t and calibration ratio of one Jacobian through the pipeline's analysis functions, plus how far the
    nearest singular value lies from the r_t threshold (relative): r_t can only differ between two Jacobians
    whose singular values differ by more than that."""
    spec = analyse_jacobian(J, sigma, kappa=kappa)
    thr = (1.0 + kappa) * sigma**2
    return {"r_t": spec.local_dim, "calibration_ratio": calibration_ratio(spec.singular_values, sigma),
            "threshold_margin": float(np.min(np.abs(spec.singular_values * thr - 1.0))),
            "singular_values": spec.singular_values}


# ----------------------------------------------------------------------------------------------------------
# sections
# ----------------------------------------------------------------------------------------------------------


class Context:
    """What every section needs: options, device, clock, report, configs, networks, shared results."""

    def __init__(self, args, device: torch.device, clock: Clock, report: Report, cfgs: dict[str, dict]) -> None:
        self.args, self.device, self.clock, self.report, self.cfgs = args, device, clock, report, cfgs
        self.sync = make_sync(device)
        self.sde = VPSDE(**cfgs["default"]["sde"])
        self.checkpoints = {name: random_checkpoint(cfgs[name], seed=args.seed, init_std=args.init_std)
                            for name in args.nets}
        self.stash: dict[str, Any] = {}  # results one section leaves for a later one
        self.section, self.section_t0 = "", time.perf_counter()  # set by run_section

    def check_budget(self, what: str) -> None:
        if self.clock.left() <= 0:
            raise BudgetExceeded(f"time budget ({self.args.budget_s:.0f} s) spent before {what}")
        cap = self.args.section_budgets.get(self.section)
        if cap is not None and time.perf_counter() - self.section_t0 > cap:
            raise BudgetExceeded(f"the section's budget ({cap:.0f} s) spent before {what}")

    def jacobian_cfg(self, name: str) -> dict:
        return dict(self.cfgs[name]["jacobian"])


def section_correctness(ctx: Context, out: dict) -> None:
    a, dev = ctx.args, ctx.device
    out["reference"] = ("CPU, float64, score_geometry.jacobian.score_jacobian (method auto, "
                        "preferred_memory_format('cpu'))")
    out["compared"] = {"float32": "stages.model_jacobians with the config's jacobian section (the pipeline's path)",
                       "float64": "score_jacobian in float64 on the device, under no_tf32"}
    out["rows"] = rows = []
    out["cpu_float64_seconds_per_jacobian"] = ref_seconds = {name: [] for name in a.nets}
    x_t = noisy_inputs(a.n_images, a.times, ctx.sde, seed=a.seed + 1, size=a.image_size)
    ref_fns = {name: score_fn_from_checkpoint(ctx.checkpoints[name], device="cpu", dtype=torch.float64,
                                              memory_format=preferred_memory_format("cpu")) for name in a.nets}
    dev64_fns = {name: score_fn_from_checkpoint(ctx.checkpoints[name], device=dev, dtype=torch.float64)
                 for name in a.nets} if "float64" in a.dtypes else {}
    try:
        # Image and time outermost, so that a short budget still covers both networks.
        for i in range(a.n_images):
            for j, t in enumerate(a.times):
                for name in a.nets:
                    ctx.check_budget(f"correctness/{name}/image {i}/t = {t}")
                    ctx.clock.log(f"correctness/{name}: image {i}, t = {t}: float64 CPU reference, "
                                  f"{', '.join(a.dtypes)} on {dev}, spectra")
                    x = torch.as_tensor(x_t[i, j], dtype=torch.float64)[None, None]
                    t0 = time.perf_counter()
                    with no_tf32():
                        ref = score_jacobian(ref_fns[name], x, t)[0].numpy()
                    ref_seconds[name].append(time.perf_counter() - t0)
                    variants = {}
                    for dtype in a.dtypes:
                        if dtype == "float32":
                            variants[dtype] = model_jacobians(ctx.checkpoints[name], x_t[i:i + 1, j:j + 1], [t],
                                                              device=dev, jacobian=ctx.jacobian_cfg(name))[0, 0]
                        else:
                            with no_tf32():
                                variants[dtype] = score_jacobian(dev64_fns[name], x.to(dev), t)[0].cpu().numpy()
                    rows.extend(_correctness_rows(ctx, name, i, t, ref, variants))
                    ctx.report.save()
    finally:
        out["summary"] = {dtype: {"n": sum(r["dtype"] == dtype for r in rows),
                                  "max_rel_err": max((r["max_rel_err"] for r in rows if r["dtype"] == dtype),
                                                     default=None),
                                  "all_r_t_equal": all(r["r_t_equal"] for r in rows if r["dtype"] == dtype),
                                  "max_calibration_ratio_rel_diff": max(
                                      (r["calibration_ratio_rel_diff"] for r in rows if r["dtype"] == dtype),
                                      default=None)}
                          for dtype in a.dtypes}


def _correctness_rows(ctx: Context, name: str, i: int, t: float, ref: np.ndarray,
                      variants: dict[str, np.ndarray]) -> list[dict]:
    """One row per device dtype: errors of its Jacobian and of its r_t and calibration ratio against ``ref``."""
    sigma = sigma_of(ctx.sde, t)
    kappa = ctx.cfgs[name]["analysis"]["kappa"]
    r = spectrum_summary(ref, sigma, kappa)
    if name == "paper" or "svd_matrix" not in ctx.stash:  # a real Jacobian for the svd section
        ctx.stash["svd_matrix"] = (ref, sigma, kappa, f"{name} U-Net, image {i}, t = {t}")
    scale = float(np.abs(ref).max())
    rows = []
    for dtype, J in variants.items():
        d = spectrum_summary(J, sigma, kappa)
        err = float(np.abs(J.astype(np.float64) - ref).max())
        sv_rel = float(np.max(np.abs(d["singular_values"] - r["singular_values"])
                              / np.maximum(r["singular_values"], 1e-300)))
        rows.append({"net": name, "image": i, "t": t, "sigma": sigma, "kappa": kappa, "dtype": dtype,
                     "max_abs_err": err, "max_abs_ref": scale,
                     "max_rel_err": err / scale if scale > 0 else float("nan"),
                     "max_rel_err_singular_values": sv_rel,
                     "r_t": d["r_t"], "r_t_ref": r["r_t"], "r_t_equal": d["r_t"] == r["r_t"],
                     "calibration_ratio": d["calibration_ratio"], "calibration_ratio_ref": r["calibration_ratio"],
                     "calibration_ratio_rel_diff": abs(d["calibration_ratio"] / r["calibration_ratio"] - 1),
                     "threshold_margin_ref": r["threshold_margin"]})
    return rows


def _loop_jacobian(score_fn, x: torch.Tensor, t: float) -> torch.Tensor:
    """The usual approach (bench_jacobian.py's (a)): one forward pass, then D ``autograd.grad`` calls."""
    xr = x.detach().clone().requires_grad_(True)
    tt = torch.full((1,), t, dtype=x.dtype, device=x.device)
    with torch.enable_grad():
        y = score_fn(xr, tt).reshape(-1)
        rows = [torch.autograd.grad(y[k], xr, retain_graph=True)[0].reshape(-1) for k in range(y.numel())]
    return torch.stack(rows)


def section_jacobian_throughput(ctx: Context, out: dict) -> None:
    a, dev, sync = ctx.args, ctx.device, ctx.sync
    t = a.throughput_t
    preset = ctx.cfgs["paper"]
    n_paper = preset["jacobian"]["n_images"] * len(preset["sample"]["times"])
    out["paper_jacobians"] = n_paper
    out["image_size"] = a.image_size
    out["rows"] = rows = []
    out["extrapolated"] = extra = {}
    D = a.image_size**2
    n_max = max(1, max(a.chunk_sizes) // D)
    xs = torch.as_tensor(noisy_inputs(n_max, [t], ctx.sde, seed=a.seed + 2, size=a.image_size)[:, 0, None],
                         device=dev)
    formats = [preferred_memory_format(dev) if f == "preferred" else
               {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}[f]
               for f in a.memory_formats]
    fmt_name = {torch.contiguous_format: "contiguous", torch.channels_last: "channels_last"}
    for name in a.nets:
        ckpt = ctx.checkpoints[name]
        loop_J = None
        cells = []
        if "loop" in a.methods:
            cells.append(("loop", None, torch.contiguous_format))
        cells += [(m, c, f) for f in dict.fromkeys(formats) for m in a.methods if m != "loop" for c in a.chunk_sizes]
        for method, chunk, fmt in cells:
            ctx.check_budget(f"jacobian_throughput/{name}/{method}/{chunk}")
            row = {"net": name, "method": method, "chunk_size": chunk, "memory_format": fmt_name[fmt]}
            score_fn = score_fn_from_checkpoint(ckpt, device=dev, dtype=torch.float32, memory_format=fmt)
            if method == "loop":
                n, x = 1, xs[:1]
                fn = lambda: _loop_jacobian(score_fn, x, t)  # noqa: E731
                repeats = a.loop_repeats
            else:
                n = max(1, chunk // D)  # images per call: chunk >= D lets chunk // D images share a pass
                x = xs[:n]
                fn = lambda: score_jacobian(score_fn, x, t, chunk_size=chunk, method=method)  # noqa: E731
                repeats = a.repeats
            row["images_per_call"] = n
            try:
                with no_tf32(), peak_memory(dev, row):
                    J = fn()
                    row.update(timed(fn, sync=sync, repeats=repeats, warmup=0))  # the call above was the warm-up
                row["seconds_per_jacobian"] = row["median_s"] / n
                J0 = J.reshape(-1, D, D)[0] if method != "loop" else J
                if method == "loop":
                    loop_J = J0
                elif loop_J is not None:
                    scale = float(loop_J.abs().max())
                    row["max_rel_diff_vs_loop"] = float((J0 - loop_J).abs().max()) / scale if scale else float("nan")
                row["status"] = "ok"
            except Exception as err:  # noqa: BLE001 - one cell (typically an OOM) must not end the section
                _record_failure(row, err)
            finally:
                J = fn = None  # noqa: F841
                _free(dev)
            rows.append(row)
            ctx.clock.log(f"jacobian_throughput/{name}: {method} chunk={chunk} {row['memory_format']}: "
                          + (f"{row['seconds_per_jacobian']:.4f} s/J" if row["status"] == "ok" else row["status"]))
            ctx.report.save()

        # The pipeline's path: stages.model_jacobians over images x the paper's five times, one image per call.
        ctx.check_budget(f"jacobian_throughput/{name}/pipeline")
        times = list(preset["sample"]["times"])
        x_t = noisy_inputs(a.pipeline_images, times, ctx.sde, seed=a.seed + 3, size=a.image_size)
        jac = ctx.jacobian_cfg(name)
        row = {"net": name, "method": "pipeline", "chunk_size": jac["chunk_size"],
               "memory_format": jac["memory_format"],
               "images_per_call": 1, "jacobian_cfg": jac, "resolved_method": default_method(dev),
               "resolved_chunk_size": default_chunk_size(dev, D) if jac["chunk_size"] is None else jac["chunk_size"]}
        row["n_jacobians"] = x_t.shape[0] * x_t.shape[1]
        try:
            with peak_memory(dev, row):
                model_jacobians(ckpt, x_t[:1, :1], times[:1], device=dev, jacobian=jac)  # warm-up
                row.update(timed(lambda: model_jacobians(ckpt, x_t, times, device=dev, jacobian=jac),
                                 sync=sync, repeats=1, warmup=0))
            row["seconds_per_jacobian"] = row["median_s"] / row["n_jacobians"]
            row["status"] = "ok"
        except Exception as err:  # noqa: BLE001
            _record_failure(row, err)
        finally:
            _free(dev)
        rows.append(row)
        ctx.clock.log(f"jacobian_throughput/{name}: pipeline (stages.model_jacobians): "
                      + (f"{row['seconds_per_jacobian']:.4f} s/J" if row["status"] == "ok" else row["status"]))

        ok = [r for r in rows if r["net"] == name and r["status"] == "ok"]
        best = min((r for r in ok if r["method"] not in ("loop", "pipeline")), key=lambda r: r["seconds_per_jacobian"],
                   default=None)
        loop = next((r for r in ok if r["method"] == "loop"), None)
        extra[name] = {
            "pipeline_s": row["seconds_per_jacobian"] * n_paper if row["status"] == "ok" else None,
            "best_s": best["seconds_per_jacobian"] * n_paper if best else None,
            "best_config": {k: best[k] for k in ("method", "chunk_size", "memory_format")} if best else None,
            "loop_s": loop["seconds_per_jacobian"] * n_paper if loop else None,
        }
        ctx.report.save()


def section_svd(ctx: Context, out: dict) -> None:
    a, dev, sync = ctx.args, ctx.device, ctx.sync
    if "svd_matrix" in ctx.stash:
        J, sigma, kappa, source = ctx.stash["svd_matrix"]
    else:  # correctness did not run: a random matrix of the right size
        rng = np.random.default_rng(a.seed)
        D = a.image_size**2
        J, sigma, kappa = rng.standard_normal((D, D)) / a.image_size, 0.5, ctx.cfgs["default"]["analysis"]["kappa"]
        source = f"random {D} x {D} (the correctness section did not run)"
    out["matrix"] = source
    out["dim"] = J.shape[0]
    cpu = out["cpu"] = {}
    Js = 0.5 * (J + J.T)
    ctx.clock.log("svd: CPU numpy.linalg.svd / eigh / analyse_jacobian")
    cpu["svd"] = timed(lambda: np.linalg.svd(J), sync=lambda: None, repeats=a.repeats)
    cpu["eigh"] = timed(lambda: np.linalg.eigh(Js), sync=lambda: None, repeats=a.repeats)
    cpu["analyse_jacobian"] = timed(lambda: analyse_jacobian(J, sigma, kappa=kappa), sync=lambda: None,
                                    repeats=a.repeats)
    s_ref = np.linalg.svd(J, compute_uv=False)[::-1]
    lam_ref = np.linalg.eigvalsh(Js)
    r_ref = local_dimension(s_ref, sigma, kappa)
    c_ref = calibration_ratio(s_ref, sigma)
    out["r_t_cpu"], out["calibration_ratio_cpu"] = r_ref, c_ref
    out["rows"] = rows = []
    Jt = torch.as_tensor(J, dtype=torch.float64, device=dev)
    Jst = 0.5 * (Jt + Jt.T)
    drivers = [None] + (["gesvd", "gesvdj"] if dev.type == "cuda" else [])
    for B in (1, a.svd_batch):
        Jb = Jt.expand(B, -1, -1).contiguous()
        Jsb = Jst.expand(B, -1, -1).contiguous()
        for op, driver in [("svd", d) for d in drivers] + [("eigh", None)]:
            ctx.check_budget(f"svd/{op}")
            row = {"op": op, "driver": driver or "default", "batch": B}
            try:
                if op == "svd":
                    fn = lambda: torch.linalg.svd(Jb, full_matrices=False, driver=driver)  # noqa: E731
                else:
                    fn = lambda: torch.linalg.eigh(Jsb)  # noqa: E731
                row.update(timed(fn, sync=sync, repeats=a.repeats))
                row["seconds_per_matrix"] = row["median_s"] / B
                res = fn()
                if op == "svd":
                    s = res[1][0].cpu().numpy()[::-1]
                    row["max_rel_diff_singular_values"] = float(np.max(np.abs(s - s_ref) / np.maximum(s_ref, 1e-300)))
                    row["r_t"] = local_dimension(s, sigma, kappa)
                    row["r_t_equal"] = row["r_t"] == r_ref
                    row["calibration_ratio"] = calibration_ratio(s, sigma)
                else:
                    lam = res[0][0].cpu().numpy()
                    row["max_abs_diff_eigvals"] = float(np.max(np.abs(lam - lam_ref)))
                row["status"] = "ok"
            except Exception as err:  # noqa: BLE001 - e.g. a driver missing from this torch build
                row["status"] = "error"
                row["error"] = f"{type(err).__name__}: {str(err)[:300]}"
            rows.append(row)
            ctx.clock.log(f"svd: {dev} {op} driver={row['driver']} batch={B}: "
                          + (f"{row['seconds_per_matrix']:.4f} s/matrix" if row["status"] == "ok" else row["status"]))
            ctx.report.save()
    best_svd = min((r["seconds_per_matrix"] for r in rows if r["status"] == "ok" and r["op"] == "svd"), default=None)
    best_eigh = min((r["seconds_per_matrix"] for r in rows if r["status"] == "ok" and r["op"] == "eigh"), default=None)
    out["speedup_svd_plus_eigh"] = ((cpu["svd"]["median_s"] + cpu["eigh"]["median_s"]) / (best_svd + best_eigh)
                                    if best_svd and best_eigh else None)


def section_sampling(ctx: Context, out: dict) -> None:
    a, dev, sync = ctx.args, ctx.device, ctx.sync
    out["path"] = ("sample.sample_sequences (what sample_from_checkpoint runs) on the network that "
                   "models.score_fn_from_checkpoint builds, float32, torch's default TF32 settings")
    out["rows"] = rows = []
    for name in a.nets:
        sample_cfg = dict(ctx.cfgs[name]["sample"])
        score_fn = score_fn_from_checkpoint(ctx.checkpoints[name], device=dev)
        sde = VPSDE(**ctx.checkpoints[name]["config"]["sde"])
        for batch in a.sample_batches:
            ctx.check_budget(f"sampling/{name}/{batch}")
            cfg = {**sample_cfg, "n_images": batch, "batch_size": batch, "n_steps": a.sample_steps}
            steps = len(time_grid(a.sample_steps, t_end=cfg["t_end"], record_times=cfg["times"])[0]) - 1
            row = {"net": name, "batch": batch, "n_steps": a.sample_steps, "grid_steps": steps}

            def sample(n_steps: int) -> None:
                sample_sequences(score_fn, sde, batch, batch_size=batch, n_steps=n_steps, t_end=cfg["t_end"],
                                 record_times=cfg["times"], seed=cfg["seed"], device=dev,
                                 image_shape=(1, a.image_size, a.image_size), progress=False)

            try:
                with peak_memory(dev, row):
                    sample(2)  # warm-up
                    row.update(timed(lambda: sample(a.sample_steps), sync=sync, repeats=a.repeats, warmup=0))
                row["seconds_per_step"] = row["median_s"] / steps
                row["sequence_steps_per_s"] = batch * steps / row["median_s"]
                row["status"] = "ok"
            except Exception as err:  # noqa: BLE001
                _record_failure(row, err)
            finally:
                _free(dev)
            rows.append(row)
            ctx.clock.log(f"sampling/{name} batch {batch}: " + (f"{row['sequence_steps_per_s']:.0f} sequence-steps/s"
                                                                if row["status"] == "ok" else row["status"]))
            ctx.report.save()


def _train_context(mode: str, device: torch.device):
    if mode == "float32":
        return contextlib.nullcontext()
    if mode == "float32_no_tf32":
        return no_tf32()
    if mode == "bf16_autocast":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise ValueError(f"train mode must be one of {TRAIN_MODES}, got {mode!r}")


def section_training(ctx: Context, out: dict) -> None:
    a, dev, sync = ctx.args, ctx.device, ctx.sync
    out["modes"] = {"float32": "torch defaults, what the pipeline runs (cuDNN may use TF32 for convolutions)",
                    "float32_no_tf32": "inside jacobian.no_tf32",
                    "bf16_autocast": "train_step inside torch.autocast(dtype=bfloat16) (not a pipeline option)"}
    out["rows"] = rows = []
    for name in a.train_nets:
        cfg = ctx.cfgs[name]
        train_cfg = {**cfg["train"], "batch_size": a.train_batch}
        for mode in a.train_modes:
            ctx.check_budget(f"training/{name}/{mode}")
            row = {"net": name, "mode": mode, "batch": a.train_batch}
            state = None
            try:
                state = init_state(cfg["model"], train_cfg, seed=a.seed, device=dev)
                gen = torch.Generator().manual_seed(a.seed)
                size = a.image_size
                images = (torch.rand((2 * a.train_batch, 1, size, size), generator=gen) * 2 - 1).to(dev)
                row["n_parameters"] = sum(p.numel() for p in state.model.parameters())
                param = cfg["model"]["parameterisation"]
                step = lambda: train_step(state, images, ctx.sde, train_cfg, parameterisation=param)  # noqa: E731
                with _train_context(mode, dev), peak_memory(dev, row):
                    row.update(timed(step, sync=sync, repeats=a.train_steps, warmup=a.train_warmup))
                row["seconds_per_step"] = row["median_s"]
                row["images_per_s"] = a.train_batch / row["median_s"]
                row["status"] = "ok"
            except Exception as err:  # noqa: BLE001
                _record_failure(row, err)
            finally:
                state = images = None
                _free(dev)
            rows.append(row)
            ctx.clock.log(f"training/{name} {mode} batch {a.train_batch}: "
                          + (f"{row['seconds_per_step']:.4f} s/step" if row["status"] == "ok" else row["status"]))
            ctx.report.save()


def section_gpu_hours(ctx: Context, out: dict) -> None:
    """The paper preset's device time from the sections above (None where a measurement is missing)."""
    secs = ctx.report.data["sections"]
    p = ctx.cfgs["paper"]
    n_jac = p["jacobian"]["n_images"] * len(p["sample"]["times"])
    n_cal = p["calibration"]["n_images"] * len(p["sample"]["times"])
    out["preset"] = {"train_steps": p["train"]["steps"], "train_batch_size": p["train"]["batch_size"],
                     "sample_n_images": p["sample"]["n_images"], "sample_batch_size": p["sample"]["batch_size"],
                     "sample_n_steps": p["sample"]["n_steps"], "jacobians": n_jac, "calibration_jacobians": n_cal}
    notes = out["notes"] = []
    if ctx.args.image_size != 28 or ctx.args.small:
        notes.append(f"measured on {'tiny networks, ' if ctx.args.small else ''}{ctx.args.image_size} px images: "
                     "not the paper's cost")

    def rows_of(section: str) -> list[dict]:
        return [r for r in secs.get(section, {}).get("rows", []) if r.get("status") == "ok" and r.get("net") == "paper"]

    train: dict[str, float] = {}
    for mode in TRAIN_MODES:
        measured = [r for r in rows_of("training") if r["mode"] == mode]
        if not measured:
            continue
        r = min(measured, key=lambda r: abs(r["batch"] - p["train"]["batch_size"]))
        train[mode] = r["seconds_per_step"] * p["train"]["batch_size"] / r["batch"]
        if r["batch"] != p["train"]["batch_size"]:  # linear in the batch: an estimate
            notes.append(f"training ({mode}) scaled from batch {r['batch']} to {p['train']['batch_size']}")
    if not train:
        notes.append("no training measurement of the paper net")
    out["train_s"] = {m: s * p["train"]["steps"] for m, s in train.items()}

    grid, _ = time_grid(p["sample"]["n_steps"], t_end=p["sample"]["t_end"], record_times=p["sample"]["times"])
    grid_steps = len(grid) - 1
    sampling = rows_of("sampling")
    at_batch = [r for r in sampling if r["batch"] == p["sample"]["batch_size"]]
    if at_batch:
        per_step = at_batch[0]["seconds_per_step"]
    elif sampling:  # nearest measured batch, scaled by sequences (an estimate)
        r = min(sampling, key=lambda r: abs(r["batch"] - p["sample"]["batch_size"]))
        per_step = r["seconds_per_step"] * p["sample"]["batch_size"] / r["batch"]
        notes.append(f"sampling scaled from batch {r['batch']} to {p['sample']['batch_size']}")
    else:
        per_step = None
        notes.append("no sampling measurement of the paper net")
    n_batches = math.ceil(p["sample"]["n_images"] / p["sample"]["batch_size"])
    out["sample_s"] = per_step * grid_steps * n_batches if per_step is not None else None
    out["sample_grid_steps"] = grid_steps

    pipe = [r for r in rows_of("jacobian_throughput") if r["method"] == "pipeline"]
    if not pipe:
        notes.append("no pipeline-path Jacobian measurement of the paper net")
    per_j = pipe[0]["seconds_per_jacobian"] if pipe else None
    out["jacobians_s"] = per_j * (n_jac + n_cal) if per_j is not None else None
    svd = secs.get("svd", {})
    cpu_analysis = svd.get("cpu", {}).get("analyse_jacobian", {}).get("median_s")
    out["analysis_cpu_s"] = cpu_analysis * (n_jac + n_cal) if cpu_analysis else None

    main_train = out["train_s"].get("float32")
    parts = [main_train, out["sample_s"], out["jacobians_s"]]
    out["gpu_hours_float32"] = sum(parts) / 3600 if all(v is not None for v in parts) else None
    bf16 = out["train_s"].get("bf16_autocast")
    out["gpu_hours_bf16_training"] = ((bf16 + out["sample_s"] + out["jacobians_s"]) / 3600
                                      if None not in (bf16, out["sample_s"], out["jacobians_s"]) else None)
    out["formula"] = ("train.steps x s/step (float32, torch defaults) + sample.n_images x grid steps x s/step "
                      "(batch sample.batch_size) + (jacobian.n_images + calibration.n_images) x times x s/Jacobian "
                      "(stages.model_jacobians); the spectra (analysis_cpu_s) run on CPU cores")


SECTION_FUNCTIONS: dict[str, Callable[[Context, dict], None]] = {
    "correctness": section_correctness, "jacobian_throughput": section_jacobian_throughput, "svd": section_svd,
    "sampling": section_sampling, "training": section_training, "gpu_hours": section_gpu_hours}


def run_section(ctx: Context, name: str) -> None:
    sections = ctx.report.data["sections"]
    out: dict[str, Any] = {"status": "running"}
    sections[name] = out
    if name not in ctx.args.sections:
        out["status"] = "skipped"
        out["reason"] = "not in --sections"
        return
    if ctx.clock.left() <= 0 and name != "gpu_hours":
        out["status"] = "skipped"
        out["reason"] = f"time budget ({ctx.args.budget_s:.0f} s) spent"
        ctx.report.save()
        return
    ctx.clock.log(f"== {name} ==")
    ctx.report.save()
    t0 = time.perf_counter()
    ctx.section, ctx.section_t0 = name, t0
    try:
        SECTION_FUNCTIONS[name](ctx, out)
        out["status"] = "ok"
    except BudgetExceeded as err:
        out["status"] = "partial"
        out["reason"] = str(err)
    except Exception:  # noqa: BLE001 - record it and go on with the next section
        out["status"] = "error"
        out["error"] = traceback.format_exc(limit=8)
        ctx.clock.log(f"{name} failed:\n{out['error']}")
    finally:
        _free(ctx.device)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    ctx.clock.log(f"{name}: {out['status']} in {out['seconds']:.1f} s")
    ctx.report.save()


# ----------------------------------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------------------------------


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v == 0:
            return "0"
        return f"{v:.3e}" if abs(v) < 1e-3 or abs(v) >= 1e5 else f"{v:.4g}"
    return str(v)


def md_table(rows: list[dict], cols: list[tuple[str, str]]) -> str:
    if not rows:
        return "(no rows)\n"
    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(k)) for k, _ in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def render_markdown(data: dict) -> str:
    env = data.get("environment", {})
    out = ["# GPU check", "",
           f"Status **{data.get('status')}** after {data.get('elapsed_s', 0):.0f} s; started {data.get('started')}; "
           f"device {env.get('device')} ({env.get('device_name')}); torch {env.get('torch')}; "
           f"mode {'small' if data.get('args', {}).get('small') else 'full'}.", ""]
    secs = data.get("sections", {})
    for name in SECTIONS:
        s = secs.get(name)
        if s is None:
            continue
        out += [f"## {name}", "", f"status: {s.get('status')}" + (f", {s['seconds']:.1f} s" if "seconds" in s else "")
                + (f" ({s['reason']})" if "reason" in s else ""), ""]
        if "error" in s:
            out += ["```", s["error"].strip(), "```", ""]
        rows = s.get("rows", [])
        if name == "correctness":
            out.append(md_table(rows, [("net", "net"), ("image", "image"), ("t", "t"), ("dtype", "dtype"),
                                       ("max_rel_err", "max rel err"), ("r_t", "r_t"), ("r_t_ref", "r_t CPU f64"),
                                       ("r_t_equal", "equal"), ("calibration_ratio", "calibration"),
                                       ("calibration_ratio_ref", "calibration CPU f64"),
                                       ("threshold_margin_ref", "threshold margin")]))
        elif name == "jacobian_throughput":
            out.append(md_table(rows, [("net", "net"), ("method", "method"), ("chunk_size", "chunk"),
                                       ("memory_format", "layout"), ("images_per_call", "images/call"),
                                       ("seconds_per_jacobian", "s / Jacobian"), ("peak_mem_gib", "peak GiB"),
                                       ("max_rel_diff_vs_loop", "rel diff vs loop"), ("status", "status")]))
            ex = [{"net": k, **v, "best_config": None if v.get("best_config") is None else
                   "{method}, chunk {chunk_size}, {memory_format}".format(**v["best_config"])}
                  for k, v in s.get("extrapolated", {}).items()]
            out.append(f"\nTime of the paper's {s.get('paper_jacobians')} Jacobians (s):\n")
            out.append(md_table(ex, [("net", "net"), ("pipeline_s", "pipeline path"), ("best_s", "best cell"),
                                     ("best_config", "best cell is"), ("loop_s", "row loop")]))
        elif name == "svd":
            cpu = s.get("cpu", {})
            crow = [{"op": k, "median_s": v["median_s"]} for k, v in cpu.items()]
            out.append(f"Matrix: {s.get('matrix')}. CPU (numpy, float64):\n")
            out.append(md_table(crow, [("op", "op"), ("median_s", "s")]))
            out.append("\nDevice (torch.linalg, float64):\n")
            out.append(md_table(rows, [("op", "op"), ("driver", "driver"), ("batch", "batch"),
                                       ("seconds_per_matrix", "s / matrix"),
                                       ("max_rel_diff_singular_values", "rel diff s_i"), ("r_t_equal", "r_t equal"),
                                       ("max_abs_diff_eigvals", "abs diff eigvals"), ("status", "status")]))
            out.append(f"\nSpeed-up of SVD + eigh over the CPU: {_fmt(s.get('speedup_svd_plus_eigh'))}\n")
        elif name == "sampling":
            out.append(md_table(rows, [("net", "net"), ("batch", "batch"), ("grid_steps", "steps"),
                                       ("seconds_per_step", "s / step"), ("sequence_steps_per_s", "sequence-steps / s"),
                                       ("peak_mem_gib", "peak GiB"), ("status", "status")]))
        elif name == "training":
            out.append(md_table(rows, [("net", "net"), ("mode", "mode"), ("batch", "batch"),
                                       ("seconds_per_step", "s / step"), ("images_per_s", "images / s"),
                                       ("peak_mem_gib", "peak GiB"), ("status", "status")]))
        elif name == "gpu_hours":
            keys = [("train_s", "training (s, per mode)"), ("sample_s", "sampling (s)"),
                    ("jacobians_s", "Jacobians incl. calibration (s)"), ("analysis_cpu_s", "spectra on CPU (s)"),
                    ("gpu_hours_float32", "**GPU-hours** (float32 training)"),
                    ("gpu_hours_bf16_training", "GPU-hours with bf16 training")]
            out.append(md_table([{"what": h, "value": s.get(k) if not isinstance(s.get(k), dict) else
                                  ", ".join(f"{m} {_fmt(v)}" for m, v in s[k].items())} for k, h in keys],
                                [("what", "term"), ("value", "value")]))
            if s.get("notes"):
                out.append("\nNotes: " + "; ".join(s["notes"]) + "\n")
        out.append("")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------------

#: Sizes of the full (GPU) run and of --small (the CPU smoke test); any flag given overrides them.
PROFILES: dict[str, dict[str, Any]] = {
    "full": {"budget_s": 360.0, "section_budgets": {"correctness": 100.0, "jacobian_throughput": 150.0, "svd": 40.0,
                                                    "sampling": 40.0, "training": 60.0},
             "image_size": 28, "n_images": 2, "times": [0.05, 0.3], "dtypes": ["float32", "float64"],
             "methods": ["vmap", "retain", "loop"], "chunk_sizes": [196, 392, 784, 1568, 3136],
             "memory_formats": ["contiguous", "channels_last"], "repeats": 3, "loop_repeats": 2,
             "pipeline_images": 2, "train_batch": 2048, "train_steps": 10, "train_warmup": 3,
             "train_modes": list(TRAIN_MODES), "train_nets": ["paper"], "sample_batches": [128, 1024],
             "sample_steps": 100, "svd_batch": 8},
    "small": {"budget_s": 240.0, "section_budgets": {}, "image_size": 16, "n_images": 1, "times": [0.3],
              "dtypes": ["float32", "float64"],
              "methods": ["vmap", "retain", "loop"], "chunk_sizes": [64, 256, 512], "memory_formats": ["preferred"],
              "repeats": 1, "loop_repeats": 1, "pipeline_images": 1, "train_batch": 8, "train_steps": 2,
              "train_warmup": 1, "train_modes": list(TRAIN_MODES), "train_nets": ["paper"], "sample_batches": [4],
              "sample_steps": 5, "svd_batch": 2},
}


def _list(kind):
    return lambda s: [kind(v) for v in s.split(",") if v.strip()]


def _budgets(s: str) -> dict[str, float]:
    out = {}
    for item in filter(None, (v.strip() for v in s.split(","))):
        name, _, seconds = item.partition("=")
        if name not in SECTIONS or not seconds:
            raise argparse.ArgumentTypeError(f"expected NAME=SECONDS with NAME in {', '.join(SECTIONS)}, "
                                             f"got {item!r}")
        out[name] = float(seconds)
    return out


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=os.environ.get("OUT") or None,
                    help="directory for gpu_check.json and gpu_check.md (default: $OUT)")
    ap.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto",
                    help="auto: CUDA when available, else CPU")
    ap.add_argument("--small", action="store_true",
                    help="tiny networks (--small-channels, one block per level) and tiny sizes: the smoke test")
    ap.add_argument("--cpu-smoke", action="store_true", help="same as --device cpu --small")
    ap.add_argument("--sections", type=_list(str), default=list(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    ap.add_argument("--nets", type=_list(str), default=list(NETS), help="comma list of default, paper")
    ap.add_argument("--seed", type=int, default=0, help="network initialisation and inputs")
    ap.add_argument("--init-std", type=float, default=0.02,
                    help="std of the weights the U-Net zero-initialises (else every Jacobian is trivial)")
    ap.add_argument("--small-channels", type=_list(int), default=[4, 8, 8], help="U-Net widths under --small")
    ap.add_argument("--image-size", type=int,
                    help="side of the square images of the Jacobian and training sections, a multiple of 4 "
                         "(full 28; small 16, so D = 256 keeps the smoke test's spectra cheap)")
    ap.add_argument("--budget-s", type=float, help="wall-clock budget of the sections (full 360, small 240)")
    ap.add_argument("--section-budgets", type=_budgets,
                    help="NAME=SECONDS,...: no new cell of a section starts after its own budget (full: "
                         "correctness=100,jacobian_throughput=150,svd=40,sampling=40,training=60; small: none)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    g = ap.add_argument_group("correctness")
    g.add_argument("--n-images", type=int, help="x_t images per network (full 2, small 1)")
    g.add_argument("--times", type=_list(float), help="t of the x_t (full 0.05,0.3; small 0.3)")
    g.add_argument("--dtypes", type=_list(str), help="device dtypes compared with the CPU float64 reference")
    g = ap.add_argument_group("jacobian_throughput")
    g.add_argument("--methods", type=_list(str), help="comma list of vmap, retain, expand, loop")
    g.add_argument("--chunk-sizes", type=_list(int), help="chunk_size values (>= D: chunk // D images per pass)")
    g.add_argument("--memory-formats", type=_list(str), help="contiguous, channels_last, preferred")
    g.add_argument("--repeats", type=int, help="timed repeats (median) of the Jacobian, SVD and sampling cells")
    g.add_argument("--loop-repeats", type=int, help="timed repeats of the row loop")
    g.add_argument("--pipeline-images", type=int, help="images x the paper's 5 times through stages.model_jacobians")
    g.add_argument("--throughput-t", type=float, default=0.05, help="t of the throughput inputs")
    g = ap.add_argument_group("training, sampling, svd")
    g.add_argument("--train-batch", type=int, help="batch size (full: the paper's 2048)")
    g.add_argument("--train-steps", type=int, help="timed optimiser steps (median)")
    g.add_argument("--train-warmup", type=int, help="untimed optimiser steps first")
    g.add_argument("--train-modes", type=_list(str), help=f"comma list of {', '.join(TRAIN_MODES)}")
    g.add_argument("--train-nets", type=_list(str), help="networks to train (default: paper)")
    g.add_argument("--sample-batches", type=_list(int), help="sequences per sampler batch")
    g.add_argument("--sample-steps", type=int, help="Euler-Maruyama steps per timed sampling run")
    g.add_argument("--svd-batch", type=int, help="batch of the batched device SVD / eigh")
    args = ap.parse_args(argv)

    if args.cpu_smoke:
        args.device, args.small = "cpu", True
    for k, v in PROFILES["small" if args.small else "full"].items():
        if getattr(args, k) is None:
            setattr(args, k, copy.deepcopy(v))
    if args.out is None:
        ap.error("no output directory: pass --out DIR or set $OUT")
    for name, values, allowed in (("--sections", args.sections, SECTIONS), ("--nets", args.nets, NETS),
                                  ("--train-nets", args.train_nets, NETS),
                                  ("--train-modes", args.train_modes, TRAIN_MODES),
                                  ("--dtypes", args.dtypes, ("float32", "float64")),
                                  ("--methods", args.methods, ("vmap", "retain", "expand", "loop")),
                                  ("--memory-formats", args.memory_formats,
                                   ("contiguous", "channels_last", "preferred"))):
        bad = [v for v in values if v not in allowed]
        if bad:
            ap.error(f"{name}: unknown {bad}; choose from {', '.join(allowed)}")
    if args.image_size < 4 or args.image_size % 4:
        ap.error(f"--image-size must be a positive multiple of 4 (two 2x downsamplings), got {args.image_size}")
    if not args.chunk_sizes or min(args.chunk_sizes) < 1:
        ap.error("--chunk-sizes must list positive integers")
    args.train_nets = [n for n in args.train_nets if n in args.nets] or args.train_nets
    return args


def resolve(args) -> torch.device:
    if args.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: --device cuda but torch.cuda.is_available() is False")
    return torch.device(args.device)


def environment(device: torch.device, config_source: str) -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
           "platform": f"{platform.system()} {platform.machine()}", "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "device": str(device), "device_name": "cpu",
           "tqdm_stand_in": TQDM_STAND_IN, "config_source": config_source,
           "allow_tf32_matmul_default": torch.backends.cuda.matmul.allow_tf32,
           "allow_tf32_cudnn_default": torch.backends.cudnn.allow_tf32,
           "float32_matmul_precision": torch.get_float32_matmul_precision()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                env["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update({"device_name": props.name, "device_memory_gib": round(props.total_memory / 2**30, 1),
                    "capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda,
                    "cudnn": torch.backends.cudnn.version()})
    return env


def main(argv=None) -> int:
    args = parse_args(argv)
    clock = Clock(args.budget_s)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    tune_allocator()  # as every pipeline job does (CPU tensors; a no-op for the device's memory)
    device = resolve(args)
    default, paper, source = load_configs()
    if args.small:  # the configs' own options (parameterisation, attention, ...) on tiny widths
        for cfg in (default, paper):
            cfg["model"].update(channels=list(args.small_channels), num_res_blocks=1)
    cfgs = {"default": default, "paper": paper}
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {"schema": "gpu_check/1", "status": "running",
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "environment": environment(device, source),
            "models": {}, "sections": {}}
    report = Report(out_dir, clock, data)
    clock.log(f"device {device} ({data['environment']['device_name']}), torch {torch.__version__}, "
              f"{'small' if args.small else 'full'} sizes, budget {args.budget_s:.0f} s, writing {report.json_path}")
    ctx = Context(args, device, clock, report, cfgs)
    for name in args.nets:
        data["models"][name] = {"model": cfgs[name]["model"],
                                "n_parameters": sum(v.numel() for v in ctx.checkpoints[name]["state"]["ema"].values()),
                                "init": f"seed {args.seed}, zero-initialised weights ~ N(0, {args.init_std}^2)"}
    report.save()
    for name in SECTIONS:
        run_section(ctx, name)
    data["status"] = "complete"
    report.save()
    clock.log(f"done: {report.json_path}, {report.md_path}")
    return 1 if any(s["status"] == "error" for s in data["sections"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
