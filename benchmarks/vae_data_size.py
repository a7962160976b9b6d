"""The converged Appendix B VAE's count against training-set size (docs/vae.md).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/vae_data_size.py --sizes 500 1500 4500 \
        --workdir /tmp/vae_data_size --out /tmp/vae_data_size.csv

For each size n the VAE of config.yaml's ``vae:`` section (``--gamma`` overrides its gamma mode) is trained by
the package's own loop (`vae.train_vae`) on n training digits (a stratified subset of the data set's training
split, the same permutation for every n) in legs of ``--leg`` epochs, resuming from the previous leg (the epoch
count is not part of the resume hash, so legs equal one run), until `claims.vae_converged` accepts its
per-epoch metrics or ``--max-epochs`` is reached. The held-out digits (the data set's held-out split, at most
``--heldout-per-class`` of each class) are the same for every n. One row per n: epochs, gamma, sqrt(MSE) on the
training batches and on held-out digits, the held-out count (mean, std, digit 1, the other digits), the verdict
and CPU seconds. ``--dataset fashion-mnist --sizes 60000 --data-root /tmp/data`` is the large-data case (Debian's
dataset-fashion-mnist IDX files, unpacked under the root; its held-out split is the 10,000 test images). One
torch thread.
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from score_geometry import io
from score_geometry.claims import vae_converged
from score_geometry.datasets import load_dataset, to_model_range
from score_geometry.vae import train_vae

ROOT = Path(__file__).resolve().parents[1]


def stratified(labels: np.ndarray, n: int, *, seed: int) -> np.ndarray:
    """Indices of n points, as equal a share of each class as n allows, from one seeded permutation (so a
    smaller subset is contained in a larger one)."""
    order = np.random.default_rng(seed).permutation(len(labels))
    classes = np.unique(labels)
    rank = np.empty(len(labels), dtype=np.int64)
    for c in classes:
        members = order[labels[order] == c]
        rank[members] = np.arange(len(members))
    # Round-robin over classes: all rank-0 points, then rank-1, ...
    key = rank * len(classes) + np.searchsorted(classes, labels)
    return np.sort(np.argsort(key, kind="stable")[:n])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 1500, 4500], help="training points")
    ap.add_argument("--dataset", default="mnist5k", help="data.dataset (mnist5k | fashion-mnist | mnist)")
    ap.add_argument("--data-root", default=None, help="data.root override (where IDX files are unpacked)")
    ap.add_argument("--gamma", default=None, help="vae.gamma override (learned | closed_form)")
    ap.add_argument("--t", type=float, default=None, help="train and evaluate on x_t at this t (default: clean)")
    ap.add_argument("--gamma-lr", type=float, default=None, help="vae.gamma_lr override (learned gamma only)")
    ap.add_argument("--leg", type=int, default=10, help="epochs between convergence checks")
    ap.add_argument("--min-epochs", type=int, default=0, help="train at least this many epochs even if converged")
    ap.add_argument("--max-epochs", type=int, default=200, help="give up (not converged) after this many epochs")
    ap.add_argument("--heldout-per-class", type=int, default=50, help="held-out points per class for the metrics")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/vae_data_size"))
    ap.add_argument("--out", type=Path, default=None, help="CSV of the table (also printed)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    data_cfg = {**base["data"], "dataset": args.dataset}
    if args.data_root is not None:
        data_cfg["root"] = args.data_root
    vcfg = copy.deepcopy(base["vae"])
    if args.gamma is not None:
        vcfg["gamma"] = args.gamma
    if args.gamma_lr is not None:
        vcfg["gamma_lr"] = args.gamma_lr
    ds = load_dataset(data_cfg)
    held = stratified(ds.heldout_labels, args.heldout_per_class * len(np.unique(ds.heldout_labels)), seed=1)
    heldout = (to_model_range(ds.heldout_images[held]), ds.heldout_labels[held])
    rows = []
    for n in args.sizes:
        idx = stratified(ds.train_labels, n, seed=0)
        x = to_model_range(ds.train_images[idx])
        lr_tag = f"_glr{vcfg['gamma_lr']:g}" if vcfg.get("gamma_lr") is not None else ""
        t_tag = "" if args.t is None else f"_t{args.t:g}"
        work = args.workdir / f"{args.dataset}_{vcfg.get('gamma', 'learned')}{lr_tag}{t_tag}_n{n}"
        work.mkdir(parents=True, exist_ok=True)
        cfg = {"seed": vcfg["seed"], "sde": base["sde"], "t": args.t,
               "data": {"dataset": args.dataset, "n_train": n}, "vae": vcfg}
        epochs, t0, ok, why = 0, time.process_time(), False, ""
        while epochs < args.max_epochs and (not ok or epochs < args.min_epochs):
            epochs = min(epochs + args.leg, args.max_epochs)
            cfg["vae"] = {**vcfg, "epochs": epochs, "checkpoint_every": args.leg}
            train_vae(x, cfg, checkpoint_path=work / "train_state.pt", metrics_path=work / "metrics.jsonl",
                      heldout=heldout)
            records = io.read_jsonl(work / "metrics.jsonl")
            ok, why = vae_converged(records)
            print(f"n={n} epoch {epochs}: {why}", flush=True)
        last = records[-1]
        by = last["heldout_active_dims_by_label"]
        rows.append({"dataset": args.dataset, "t": args.t, "n_train": n, "gamma_mode": vcfg.get("gamma", "learned"),
                     "epochs": len(records), "steps": last["step"], "gamma": last["gamma"],
                     "sqrt_mse_train": math.sqrt(last["mse"]), "sqrt_mse_heldout": math.sqrt(last["heldout_mse"]),
                     "count_mean": last["heldout_active_dims"], "count_std": last["heldout_active_dims_std"],
                     "count_digit_1": by.get("1", float("nan")),
                     "count_other_digits": float(np.mean([v for k, v in by.items() if k != "1"])),
                     "converged": ok, "verdict": why, "cpu_seconds": round(time.process_time() - t0, 1)})
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt=".3g"))
    if args.out is not None:
        io.write_csv(args.out, table)


if __name__ == "__main__":
    main()
