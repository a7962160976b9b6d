#!/usr/bin/env python
"""Benchmark: exact score Jacobian of one 28x28 image on the project's U-Net.

Times, on the same network and the same image, in the same run (interleaved
repeats, median reported, after one warm-up of each):

  (a) loop  -- 784 ``torch.autograd.grad`` calls (one Jacobian row each,
               ``retain_graph=True``) after one forward pass: the usual approach;
  (b) batch -- ``score_geometry.jacobian.score_jacobian`` as the pipeline runs it:
               ``method="auto"`` on the network in
               ``preferred_memory_format(device)`` (on CPU: ``"retain"`` on a
               ``channels_last`` network; on CUDA: ``"vmap"``, contiguous);
  (c) fwd   -- one forward pass of a batch of 784 images under ``torch.no_grad``
               (the cost unit: (b) cannot be much cheaper than this).

Prints machine info, a table (with the minor page faults of each call), the
ratios a/b (goal >= 2.5 on CPU) and b/c (goal <= 1.0), and the max |(a) - (b)|.

The process's allocator is set up as the pipeline's jobs set theirs
(``score_geometry.runtime.tune_allocator``: glibc keeps freed memory instead of
mapping fresh pages for every large tensor); ``--default-allocator`` leaves
glibc's defaults.  Either way every method runs under the same allocator.

Roofline (``--no-roofline`` skips it): the floating-point operations of one
Jacobian row (one backward pass to the input, counted by
``torch.utils.flop_counter.FlopCounterMode``; an exact Jacobian needs ``D`` of
them, whatever the method), and the machine's practical float32 peak measured in
the same run: the faster of a 2048^3 matmul through BLAS (``a @ b``) and the same
product as a 1x1 convolution, which goes through the convolution library
(oneDNN on CPU, cuDNN on CUDA) that the network's layers use.  The two differ a
lot on some machines (on our AMD EPYC, MKL's sgemm reaches half of oneDNN's
rate).  It prints the GFLOP/s each method reaches and the largest a/b any exact
method could reach: the time of (a) over the time of ``D`` rows at that peak.

``--compare`` also times ``method="vmap"`` on the contiguous network (the
default before 2026-11-29), ``method="expand"``, plain
``torch.func.vmap(jacrev)``, and the loop (a) on the network in (b)'s layout
(so the layout's share of the gain is visible).  ``--method`` and
``--memory-format`` change what is timed as (b).

``--peers`` also times what a PyTorch user would call instead of (b), each on
the contiguous network: ``torch.autograd.functional.jacobian(..., vectorize=True)``,
``torch.func.jacrev`` and ``torch.func.jacfwd`` (forward mode, vmapped over the
basis), and prints the fastest of them (the loop (a) included) over (b): the
dedicated routine's speed-up over the best a user gets without it.
``--image-shape C,H,W`` (default 1,28,28; H and W divisible by 4) sets the image
and so D = C H W, e.g. 3,32,32 for D = 3,072.

Usage: python benchmarks/bench_jacobian.py [--device auto|cpu|cuda] [--channels 32,64,64]
       [--repeats 3] [--threads N] [--chunk-size N] [--attention] [--compare] [--method M]
       [--memory-format auto|channels_last|contiguous] [--peers] [--image-shape C,H,W]
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

try:
    from score_geometry.jacobian import no_tf32, preferred_memory_format, score_jacobian
except ImportError:  # running from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from score_geometry.jacobian import no_tf32, preferred_memory_format, score_jacobian
from score_geometry.runtime import tune_allocator


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def build_net(channels, num_res_blocks: int, attention: bool, seed: int, in_channels: int = 1
              ) -> tuple[nn.Module, str]:
    torch.manual_seed(seed)
    try:
        from score_geometry.unet import UNet

        net = UNet(tuple(channels), num_res_blocks=num_res_blocks, attention=attention, in_channels=in_channels)
        name = (f"score_geometry.unet.UNet(channels={tuple(channels)}, num_res_blocks={num_res_blocks}, "
                f"attention={attention}, in_channels={in_channels})")
    except ImportError as err:  # the U-Net is written elsewhere; keep the benchmark usable without it
        net = _StandInNet(channels, in_channels)
        name = f"stand-in conv net {tuple(channels)} (score_geometry.unet unavailable: {err})"
    # The U-Net zero-initialises its last convolutions (identity blocks, zero output);
    # give those weights random values so the Jacobian is non-trivial.
    with torch.no_grad():
        for p in net.parameters():
            if p.numel() and p.abs().max() == 0:
                p.normal_(0.0, 0.02)
    return net.eval(), name


class _StandInNet(nn.Module):
    """Conv/GroupNorm/SiLU encoder-decoder with the UNet's (x, t) interface."""

    def __init__(self, channels, in_channels: int = 1) -> None:
        super().__init__()
        c0, c1, c2 = channels
        self.t = nn.Linear(1, c0)
        self.inp = nn.Conv2d(in_channels, c0, 3, padding=1)
        self.d1 = nn.Sequential(nn.GroupNorm(8, c0), nn.SiLU(), nn.Conv2d(c0, c1, 3, stride=2, padding=1))
        self.d2 = nn.Sequential(nn.GroupNorm(8, c1), nn.SiLU(), nn.Conv2d(c1, c2, 3, stride=2, padding=1))
        self.u2 = nn.Sequential(nn.GroupNorm(8, c2), nn.SiLU(), nn.Upsample(scale_factor=2), nn.Conv2d(c2, c1, 3, padding=1))
        self.u1 = nn.Sequential(nn.GroupNorm(8, c1), nn.SiLU(), nn.Upsample(scale_factor=2), nn.Conv2d(c1, c0, 3, padding=1))
        self.out = nn.Sequential(nn.GroupNorm(8, c0), nn.SiLU(), nn.Conv2d(c0, in_channels, 3, padding=1))

    def forward(self, x, t):
        h0 = self.inp(x) + self.t(t[:, None])[:, :, None, None]
        h1 = self.d1(h0)
        h2 = self.d2(h1)
        h = self.u2(h2) + h1
        h = self.u1(h) + h0
        return self.out(h)


def jacobian_flops(net: nn.Module, x: torch.Tensor, t: torch.Tensor, rows: int = 4) -> float:
    """FLOPs of an exact Jacobian of ``net(., t)`` at the single image ``x``: D backward passes to the input
    (each counted on a recorded graph; ``rows`` of them are counted and averaged)."""
    from torch.utils.flop_counter import FlopCounterMode

    xr = x.detach().clone().requires_grad_(True)
    y = net(xr, t).reshape(-1)
    with FlopCounterMode(display=False) as counter:
        for i in range(rows):
            torch.autograd.grad(y[i], xr, retain_graph=True)
    return counter.get_total_flops() / rows * y.numel()


def forward_flops(net: nn.Module, xs: torch.Tensor, ts: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(xs[:2], ts[:2])
    return counter.get_total_flops() / 2 * xs.shape[0]


def peak_gflops(device: torch.device, sync, n: int = 2048, repeats: int = 10) -> dict[str, float]:
    """Best float32 rates (GFLOP/s) over ``repeats`` calls, after a warm-up, of the (n, n) @ (n, n) product
    done two ways: ``"blas"`` (``a @ b``) and ``"conv"`` (a 1x1 convolution of n input channels to n output
    channels over n pixels: the same 2 n^3 FLOPs, through the convolution library)."""
    import torch.nn.functional as F

    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    x = torch.randn(1, n, n // 32, 32, device=device)
    w = torch.randn(n, n, 1, 1, device=device)
    rates = {}
    for name, fn in (("blas", lambda: a @ b), ("conv", lambda: F.conv2d(x, w))):
        fn()
        best = float("inf")
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            best = min(best, time.perf_counter() - t0)
        rates[name] = 2 * n**3 / best / 1e9
    return rates


PEERS = {"p1": "autograd.functional.jacobian(vectorize=True)", "p2": "torch.func.jacrev",
         "p3": "torch.func.jacfwd"}


def _ram_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def _peer_call(key: str, net: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The (D, D) Jacobian of the network at (x, t) as a PyTorch user would get it without this project."""
    D = x[0].numel()

    def flat(z):  # the score network at t as a function of the image alone, as the peers take it
        return net(z, t).reshape(-1)

    if key == "p1":
        return torch.autograd.functional.jacobian(flat, x, vectorize=True).reshape(D, D)
    from torch.func import jacfwd, jacrev

    return (jacrev if key == "p2" else jacfwd)(flat)(x).reshape(D, D)


def _peer_child(conn, key, net, x, t, threads, tune, mem_cap, want_result) -> None:
    """One peer's warm-up and one timed call in this (spawned) process; the result goes back through conn."""
    try:
        resource.setrlimit(resource.RLIMIT_AS, (mem_cap, mem_cap))
        torch.set_num_threads(threads)
        if tune:
            tune_allocator()
        with no_tf32():
            _peer_call(key, net, x, t)
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.perf_counter()
            J = _peer_call(key, net, x, t)
            seconds = time.perf_counter() - t0
        out = {"seconds": seconds, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0,
               "max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
        if want_result:
            out["J"] = J.detach().cpu().numpy()  # (a numpy array: torch shares tensors through files the child owns)
    except (RuntimeError, MemoryError) as err:  # an allocation over the cap, or the peer cannot run this net
        out = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"}
    conn.send(out)
    conn.close()


def run_peer(key, net, x, t, threads, tune, mem_cap, want_result) -> dict:
    """Time one PyTorch peer in a fresh process capped at ``mem_cap`` bytes of address space: each peer's
    memory peak is its own (in one process the allocator's retained peaks add up past the RAM), and a peer
    that does not fit reports its error instead of the OOM killer ending the benchmark."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_peer_child, args=(child, key, net, x, t, threads, tune,
                                                 mem_cap, want_result))
    proc.start()
    child.close()
    try:
        out = parent.recv()
    except EOFError:
        out = {"error": f"process ended with exit code {proc.join() or proc.exitcode}"}
    proc.join()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--channels", default="32,64,64", help="U-Net widths at 28, 14, 7 px")
    ap.add_argument("--num-res-blocks", type=int, default=1)
    ap.add_argument("--attention", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per method (median reported)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: leave default)")
    ap.add_argument("--chunk-size", type=int, default=None, help="chunk_size for (b) (default: library default)")
    ap.add_argument("--t", type=float, default=0.5, help="diffusion time of the image")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compare", action="store_true",
                    help="also time method='vmap' on the contiguous network, method='expand', vmap(jacrev) "
                         "and the loop on the network in (b)'s layout")
    ap.add_argument("--no-roofline", dest="roofline", action="store_false",
                    help="skip the FLOP count and the peak-rate measurement")
    ap.add_argument("--method", default="auto", choices=["auto", "vmap", "expand", "retain"],
                    help="batch_jacobian method timed as (b) (auto: the library's default for the device)")
    ap.add_argument("--default-allocator", dest="tune_allocator", action="store_false",
                    help="leave glibc malloc at its defaults (the pipeline's jobs call runtime.tune_allocator, "
                         "and so does this script unless told not to; it applies to every method timed)")
    ap.add_argument("--peers", action="store_true",
                    help="also time the PyTorch functions a user would call instead: "
                         "autograd.functional.jacobian(vectorize=True), func.jacrev, func.jacfwd")
    ap.add_argument("--peer-memory-gib", type=float, default=0.8 * _ram_gib(),
                    help="address-space cap of each peer's process (default: 80%% of RAM), so a peer that "
                         "does not fit fails with its own error instead of the machine's OOM killer")
    ap.add_argument("--image-shape", default="1,28,28", help="C,H,W of the image (H, W divisible by 4)")
    ap.add_argument("--memory-format", default="auto", choices=["auto", "channels_last", "contiguous"],
                    help="layout of the network in (b) (auto: jacobian.preferred_memory_format(device))")
    args = ap.parse_args(argv)

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    allocator = "glibc defaults"
    if args.tune_allocator:
        allocator = "runtime.tune_allocator()" if tune_allocator() else "tune_allocator() not available here"
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            ap.error("--device cuda requested but CUDA is not available")
    channels = [int(c) for c in args.channels.split(",")]
    try:
        shape = tuple(int(n) for n in args.image_shape.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1 or shape[1] % 4 or shape[2] % 4:
        ap.error(f"--image-shape {args.image_shape!r}: expected C,H,W with H and W divisible by 4")

    net, net_name = build_net(channels, args.num_res_blocks, args.attention, args.seed, in_channels=shape[0])
    net = net.to(device)  # contiguous: the loop (a) as peers run it
    fmt = {"auto": preferred_memory_format(device), "channels_last": torch.channels_last,
           "contiguous": torch.contiguous_format}[args.memory_format]
    net_b = copy.deepcopy(net).to(memory_format=fmt)  # the network as (b) sees it
    gen = torch.Generator().manual_seed(args.seed + 1)
    x = torch.randn(1, *shape, generator=gen).to(device)
    t = torch.full((1,), args.t, device=device)
    D = x[0].numel()
    xs = torch.randn(D, *shape, generator=gen).to(device)
    ts = torch.full((D,), args.t, device=device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def make_loop(model):
        def loop():
            xr = x.detach().clone().requires_grad_(True)
            y = model(xr, t).reshape(-1)
            rows = [torch.autograd.grad(y[i], xr, retain_graph=True)[0].reshape(-1) for i in range(D)]
            return torch.stack(rows)
        return loop

    def batch():
        return score_jacobian(net_b, x, t, chunk_size=args.chunk_size, method=args.method)[0]

    def vmap_contiguous():
        return score_jacobian(net, x, t, chunk_size=args.chunk_size, method="vmap")[0]

    def expand():
        return score_jacobian(net, x, t, chunk_size=args.chunk_size, method="expand")[0]

    def jacrev_vmap():
        from torch.func import jacrev, vmap

        f1 = lambda z, tt: net(z[None], tt[None])[0]  # noqa: E731
        with torch.no_grad():
            return vmap(jacrev(f1))(x, t).reshape(D, D)

    def fwd():
        with torch.no_grad():
            return net(xs, ts)

    fmt_name = "channels_last" if fmt == torch.channels_last else "contiguous"
    cases = [(f"(a) loop: {D} x autograd.grad", make_loop(net)),
             (f"(b) batch_jacobian method={args.method!r}, {fmt_name}", batch),
             (f"(c) forward, batch of {D}", fwd)]
    if args.compare:
        cases += [("(b') batch_jacobian method='vmap', contiguous", vmap_contiguous),
                  ("(b'') batch_jacobian method='expand'", expand), ("(b3) vmap(jacrev)", jacrev_vmap),
                  (f"(a') loop on the {fmt_name} network", make_loop(net_b))]
    peers = []
    if args.peers:
        peers = [(f"({key}) {label}", key) for key, label in PEERS.items()]
        mem_cap = int(args.peer_memory_gib * 2**30)

    print("== bench_jacobian ==")
    print(f"python {platform.python_version()}, torch {torch.__version__}, {platform.system()} {platform.machine()}")
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical cores), torch threads: {torch.get_num_threads()}")
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}")
    print(f"device: {device}, dtype: {x.dtype}, net: {net_name}, "
          f"params: {sum(p.numel() for p in net.parameters()):,}")
    print(f"D = {D}, chunk_size = {args.chunk_size if args.chunk_size is not None else 'default'}, "
          f"repeats = {args.repeats} (+1 warm-up), interleaved, median; allocator: {allocator}")

    times = {name: [] for name, _ in cases}
    faults = {name: [] for name, _ in cases}  # minor page faults per call (the kernel handing out fresh pages)
    results = {}
    peer_failed, peak_rss = {}, {}
    with no_tf32():
        for name, fn in cases:  # warm-up (also the results used for the agreement check)
            results[name] = fn()
            sync()
        for _ in range(args.repeats):
            for name, fn in cases:
                sync()
                f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                t0 = time.perf_counter()
                fn()
                sync()
                times[name].append(time.perf_counter() - t0)
                faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
            for name, key in peers:  # each in a fresh process (its own memory peak), after its own warm-up
                if peer_failed.get(name):
                    continue
                out = run_peer(key, net, x, t, torch.get_num_threads(), args.tune_allocator, mem_cap,
                               want_result=name not in results)
                if "error" in out:
                    peer_failed[name] = out["error"]
                    continue
                times.setdefault(name, []).append(out["seconds"])
                faults.setdefault(name, []).append(out["faults"])
                peak_rss.setdefault(name, []).append(out["max_rss_gib"])
                if "J" in out:
                    results[name] = torch.from_numpy(out["J"]).to(device)

    med = {k: statistics.median(v) for k, v in times.items()}
    w = max(len(k) for k in med)
    print(f"\n{'method':<{w}}  {'median s':>9}  {'min s':>8}  {'max s':>8}  {'page faults':>11}")
    for name in med:
        print(f"{name:<{w}}  {med[name]:9.3f}  {min(times[name]):8.3f}  {max(times[name]):8.3f}  "
              f"{statistics.median(faults[name]):11,.0f}")
    for name, why in peer_failed.items():
        print(f"{name:<{w}}  did not finish: {why}")
    if peak_rss:
        print("peak resident memory of each peer's process (GiB): "
              + ", ".join(f"{n.split()[0]} {max(v):.1f}" for n, v in peak_rss.items()))
    a, b, c = (med[name] for name, _ in cases[:3])
    print(f"\na/b (speed-up over the row loop)       = {a / b:6.2f}   (goal >= 2.5)")
    print(f"b/c (Jacobian / forward of {D} images) = {b / c:6.2f}   (goal <= 1.0)")
    if peers:
        best = min([cases[0][0], *(name for name, _ in peers if name in med)], key=med.get)
        print(f"fastest PyTorch peer = {best.split(' ', 1)[1]}: peer/b = {med[best] / b:6.2f}   "
              f"(batch_jacobian's speed-up over the best a user gets without it; goal >= 1)")
    ref = results[cases[0][0]]
    for name in results:
        if name == cases[0][0] or name.startswith("(c)"):
            continue
        diff = (results[name] - ref).abs().max().item()
        print(f"max |(a) - {name.split()[0]}| = {diff:.3e}   (max |J| = {ref.abs().max().item():.3e})")
    if args.roofline:
        flops = jacobian_flops(net, x, t)
        with no_tf32():  # the peak of the arithmetic the Jacobian uses (float32, no TF32 on CUDA)
            rates = peak_gflops(device, sync)
        peak = max(rates.values())
        print(f"\nroofline: one Jacobian row = {flops / D / 1e6:.1f} MFLOP (one backward pass to the input), "
              f"the Jacobian = {flops / 1e9:.1f} GFLOP; float32 peak here = {peak:.1f} GFLOP/s "
              f"(2048^3 product: BLAS matmul {rates['blas']:.1f}, 1x1 convolution {rates['conv']:.1f})")
        for name in med:
            work = flops if not name.startswith("(c)") else forward_flops(net, xs, ts)
            print(f"  {name:<{w}}  {work / med[name] / 1e9:7.1f} GFLOP/s  ({work / med[name] / 1e9 / peak:4.0%} of peak)")
        t_floor = flops / (peak * 1e9)
        print(f"largest a/b any exact method could reach here (all {D} rows at the peak) = "
              f"{a / t_floor:6.2f}")
    ok = math.isfinite(a / b)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
