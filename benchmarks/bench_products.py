"""What one network pass of the matrix-free route costs as D grows, on the project's default-width U-Net
(issue 23, item 4: cost against D with a network, not an oracle).

For each D (a 3 x H x H image, or 1 x 28 x 28 for 784) a U-Net of the default config's widths (``--channels``,
``--res-blocks``) built for that shape, with random weights (the cost of a pass does not depend on training;
the number of passes does, and is taken from the trained U-Net at D = 784: ``--passes-per-triplet``, 45 in
docs/benchmarks.md). Timed in the same process, interleaved ``--repeats`` times, 2 warm-up calls first: a block
of ``--batch`` Jacobian-vector products (forward mode, `geometry.lowrank.JacobianProducts.jv`), the same block
of vector-Jacobian products (``jtu``), and, where ``D <= --exact-max``, the exact route's whole Jacobian
(`jacobian.score_jacobian`, D reverse passes). Each D runs in its own spawned process, so the peak resident
memory is its own. Columns: ms per pass of each product, the exact Jacobian's seconds (measured) and the
matrix-free route's seconds per Jacobian *estimated* as passes_per_triplet x k x the mean ms per pass, for
each k of ``--ks`` (an estimate: the passes per triplet were measured at D = 784 only).

Usage: python benchmarks/bench_products.py [--dims 784,3072,12288,49152] [--channels 32,64,64]
       [--res-blocks 1] [--batch 64] [--repeats 3] [--exact-max 3072] [--ks 100,300,1000] [--threads N]
       [--out FILE.csv]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time

from bench_lowrank import _shape  # the same D -> image shape (this script's folder is on sys.path)


def _one(conn, D: int, args: dict) -> None:
    import numpy as np
    import torch

    from score_geometry.geometry.lowrank import JacobianProducts
    from score_geometry.jacobian import score_jacobian
    from score_geometry.unet import UNet

    if args["threads"]:
        torch.set_num_threads(args["threads"])
    shape = _shape(D)
    torch.manual_seed(0)
    net = UNet(tuple(args["channels"]), num_res_blocks=args["res_blocks"], in_channels=shape[0]).eval()
    with torch.no_grad():
        for p in net.parameters():  # the zero-initialised output convolution gets weights, so J is not trivial
            if p.abs().max() == 0:
                p.normal_(0.0, 0.05)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    ops = JacobianProducts(net, x, 0.05, batch=args["batch"], products="forward")
    V = np.random.default_rng(0).standard_normal((D, args["batch"]))
    exact = D <= args["exact_max"]
    for _ in range(2):
        ops.jv(V), ops.jtu(V)
    times: dict[str, list[float]] = {"jv": [], "jtu": [], "exact": []}
    for _ in range(args["repeats"]):
        for name, fn in (("jv", lambda: ops.jv(V)), ("jtu", lambda: ops.jtu(V))):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        if exact:
            t0 = time.perf_counter()
            score_jacobian(net, x[None], 0.05)
            times["exact"].append(time.perf_counter() - t0)
    jv_ms = 1e3 * float(np.median(times["jv"])) / args["batch"]
    jtu_ms = 1e3 * float(np.median(times["jtu"])) / args["batch"]
    row = {"D": D, "shape": "x".join(map(str, shape)), "jv_ms_per_pass": jv_ms, "vjp_ms_per_pass": jtu_ms,
           "exact_seconds": float(np.median(times["exact"])) if exact else float("nan")}
    for k in args["ks"]:
        row[f"lowrank_seconds_est_k{k}"] = args["passes_per_triplet"] * k * 0.5 * (jv_ms + jtu_ms) / 1e3
    row["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    conn.send(row)
    conn.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dims", default="784,3072,12288,49152")
    p.add_argument("--channels", default="32,64,64", help="the U-Net's widths (the default config's)")
    p.add_argument("--res-blocks", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--exact-max", type=int, default=3072, help="time the exact route up to this D")
    p.add_argument("--ks", default="100,300,1000", help="triplet counts for the matrix-free estimate")
    p.add_argument("--passes-per-triplet", type=float, default=45.0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default=None, help="write the rows as CSV here")
    a = p.parse_args(argv)
    args = {"channels": [int(c) for c in a.channels.split(",")], "res_blocks": a.res_blocks, "batch": a.batch,
            "repeats": a.repeats, "exact_max": a.exact_max, "ks": [int(k) for k in a.ks.split(",")],
            "passes_per_triplet": a.passes_per_triplet, "threads": a.threads}
    import pandas as pd

    ctx = mp.get_context("spawn")
    rows = []
    for D in (int(d) for d in a.dims.split(",")):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_one, args=(child, D, args))
        proc.start()
        rows.append(parent.recv())
        proc.join()
        print(f"D = {D}: {rows[-1]}", flush=True)
    table = pd.DataFrame(rows)
    base = table.iloc[0]
    table["vjp_ms_per_pass_vs_first"] = table["vjp_ms_per_pass"] / base["vjp_ms_per_pass"]
    table["D_vs_first"] = table["D"] / base["D"]
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if a.out:
        table.to_csv(a.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
