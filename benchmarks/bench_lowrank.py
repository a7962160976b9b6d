"""The matrix-free route on closed-form Gaussian oracles up to D = 196,608 (issue 23, validation (b) and cost).

For each D (a 3 x H x H image, or 1 x 28 x 28 for 784), a Gaussian supported on a random ``--rank``-dimensional
subspace (`oracle.GaussianSubspaceOracle`), one noisy point at ``--t``: `geometry.lowrank.lowrank_spectrum`
against the closed form (r_t, the singular values 1/(alpha^2 lambda_i + sigma^2), the largest principal angle
between the found v_1..v_K and the data subspace, the floor ratio 1), with its time, network passes and the
peak resident memory of a fresh process; and, where the D x D matrix fits (``--exact-max``), the exact route
on the same point (the oracle's dense Jacobian, `spectra.analyse_jacobian`) timed alike. Each D runs in its own
spawned process, so each peak is its own. The oracle's product costs O(K D), a network's one forward and
backward pass: the passes column is what carries over to a network, the seconds are the linear algebra's.

Usage: python benchmarks/bench_lowrank.py [--dims 784,3072,12288,49152,196608] [--rank 16] [--t 0.05]
       [--exact-max 3072] [--threads N] [--out FILE.csv]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import resource
import sys
import time


def _shape(D: int) -> tuple[int, int, int]:
    if D == 784:
        return (1, 28, 28)
    side = math.isqrt(D // 3)
    if 3 * side * side != D:
        raise ValueError(f"D = {D} is neither 784 nor 3 H^2")
    return (3, side, side)


def _one(conn, D: int, rank: int, t: float, exact: bool, threads: int) -> None:
    import numpy as np
    import torch

    from score_geometry.geometry.lowrank import lowrank_spectrum
    from score_geometry.oracle import GaussianSubspaceOracle
    from score_geometry.spectra import analyse_jacobian

    if threads:
        torch.set_num_threads(threads)
    orc = GaussianSubspaceOracle.random(D, rank, variances=torch.logspace(math.log10(0.2), math.log10(4.0), rank),
                                        data_shape=_shape(D), seed=0)
    sigma, alpha = float(orc.sigma(t)), float(orc.alpha(t))
    x = orc.perturb(orc.sample(1, generator=torch.Generator().manual_seed(1)), t)[0]
    t0 = time.perf_counter()
    low = lowrank_spectrum(orc, x, t, sigma, 0.1, seed=0)
    seconds = time.perf_counter() - t0
    K = orc.local_dim(t)
    expected = np.sort(1.0 / (alpha**2 * orc.variances.numpy() + sigma**2))[:K]
    cosines = np.linalg.svd(orc.basis.numpy()[:, :].T @ low.v[:, :K], compute_uv=False)
    row = {"D": D, "rank": rank, "r_true": K, "r_lowrank": low.local_dim, "r_own_lowrank": low.local_dim_own_floor,
           "k": low.rank, "capped": low.capped,
           "s_max_rel_err": float(np.max(np.abs(low.singular_values[:K] / expected - 1))),
           "max_angle_rad": float(np.arccos(np.clip(cosines.min(), -1.0, 1.0))),
           "floor_ratio": low.floor_ratio, "passes": low.n_products, "seconds_lowrank": seconds,
           "peak_rss_gib_lowrank": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    if exact:
        t0 = time.perf_counter()
        ex = analyse_jacobian(orc.jacobian(t), sigma, 0.1)
        row |= {"r_exact": ex.local_dim, "seconds_exact": time.perf_counter() - t0,
                "peak_rss_gib_with_exact": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    conn.send(row)
    conn.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", default="784,3072,12288,49152,196608")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--t", type=float, default=0.05)
    ap.add_argument("--exact-max", type=int, default=3072, help="also the exact route up to this D")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default=None, help="CSV of the rows (default: only print them)")
    args = ap.parse_args(argv)
    ctx = mp.get_context("spawn")
    rows = []
    for D in (int(d) for d in args.dims.split(",")):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_one, args=(child, D, args.rank, args.t, D <= args.exact_max, args.threads))
        proc.start()
        child.close()
        row = parent.recv()
        proc.join()
        print(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
        rows.append(row)
    if args.out:
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.out, index=False)
    ok = all(r["r_lowrank"] == r["r_true"] and r["max_angle_rad"] < 1e-3 for r in rows)
    print(f"\nr_t exact and subspace within 1e-3 rad at every D: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
