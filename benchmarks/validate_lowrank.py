"""The matrix-free route against the exact one on a trained score model (issue 23, validation (a)).

For ``--images`` held-out digits of the run's data set, noised at each of ``--times`` (x_t = alpha_t x0 +
sigma_t eps), the exact Jacobian (`jacobian.score_jacobian` + `spectra.analyse_jacobian`) and the matrix-free
spectrum (`geometry.lowrank.lowrank_spectrum`) of the same model at the same point, compared: r_t (paper's and
own floor), the largest |Phi_n - Phi_n exact| and |cos(u_i, v_i) - exact| for i, n <= r_t, the calibration
ratio, and each route's network passes and time. One row per (image, t) to ``--out`` (CSV); a summary on stdout.

Usage: python benchmarks/validate_lowrank.py --model results/<run>/model/model.pt
           --data results/<run>/data/dataset.h5 [--images 2] [--times 0.01,0.03,0.05,0.15,0.3] --out FILE.csv
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd
import torch

from score_geometry.geometry.lowrank import lowrank_spectrum
from score_geometry.datasets import to_model_range
from score_geometry.io import load_checkpoint, read_dataset
from score_geometry.jacobian import preferred_memory_format, score_jacobian
from score_geometry.runtime import tune_allocator
from score_geometry.score_models import load_score_model
from score_geometry.spectra import analyse_jacobian, overlaps


def compare(model, x, t: float, sigma: float, kappa: float, seed: int) -> dict:
    t0 = time.perf_counter()
    J = score_jacobian(model, x[None], t)[0]
    ex = analyse_jacobian(J, sigma, kappa)
    t_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    low = lowrank_spectrum(model, x, t, sigma, kappa, seed=seed)
    t_low = time.perf_counter() - t0
    r = min(ex.local_dim, low.rank)
    phi_ex, phi_low = overlaps(ex), low.overlaps()
    phi_err = max(float(np.max(np.abs(phi_low[k][:r] - phi_ex[k][:r]), initial=0.0)) for k in ("uv", "uw", "vw"))
    return {"t": t, "sigma": sigma, "D": ex.dim, "r_exact": ex.local_dim, "r_lowrank": low.local_dim,
            "r_own_exact": ex.local_dim_own_floor, "r_own_lowrank": low.local_dim_own_floor,
            "k": low.rank, "capped": low.capped,
            "phi_max_err": phi_err,
            "cos_max_err": float(np.max(np.abs(low.cos_uv[:r] - ex.cos_uv[:r]), initial=0.0)),
            "s_max_rel_err": float(np.max(np.abs(low.singular_values[:r] / ex.singular_values[:r] - 1), initial=0.0)),
            "floor_exact": ex.floor_ratio, "floor_lowrank": low.floor_ratio, "floor_se": low.floor_ratio_se,
            "skew_inside_exact": ex.skew_share_inside, "skew_inside_lowrank": low.skew_share_inside,
            "skew_inside_se": low.skew_share_inside_se,
            "residual_uv_max": float(low.residual_uv.max()), "residual_w_max": float(low.residual_w.max()),
            "passes_exact": ex.dim, "passes_lowrank": low.n_products, "seconds_exact": t_exact,
            "seconds_lowrank": t_low}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--times", default="0.01,0.03,0.05,0.15,0.3")
    ap.add_argument("--kappa", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tune_allocator()
    model = load_score_model(load_checkpoint(args.model), memory_format=preferred_memory_format("cpu"))
    ds = read_dataset(args.data)
    gen = torch.Generator().manual_seed(args.seed)
    x0 = to_model_range(ds.heldout_images[:args.images])  # (N, C, H, W) in [-1, 1]
    rows = []
    for t in (float(s) for s in args.times.split(",")):
        alpha, sigma = (float(v) for v in model.sde.scales(t))
        for i in range(args.images):
            x = alpha * x0[i] + sigma * torch.randn(x0[i].shape, generator=gen)
            row = compare(model, x, t, sigma, args.kappa, args.seed + i) | {"image": i}
            print(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                  flush=True)
            rows.append(row)
    df = pd.DataFrame(rows)
    df.to_csv(args.out, index=False)
    same = (df.r_exact == df.r_lowrank).mean()
    print(f"\nr_t identical on {same:.0%} of {len(df)} Jacobians, max |diff| = {(df.r_exact - df.r_lowrank).abs().max()};"
          f" own floor: {(df.r_own_exact == df.r_own_lowrank).mean():.0%}, max |diff| = "
          f"{(df.r_own_exact - df.r_own_lowrank).abs().max()}; max Phi err {df.phi_max_err.max():.2e}, "
          f"max cos err {df.cos_max_err.max():.2e}; floor rel err max "
          f"{(df.floor_lowrank / df.floor_exact - 1).abs().max():.2%}; passes lowrank / exact median "
          f"{(df.passes_lowrank / df.passes_exact).median():.1f}, time ratio median "
          f"{(df.seconds_lowrank / df.seconds_exact).median():.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
