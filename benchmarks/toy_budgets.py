"""Does the toy's non-conservative verdict move with training? (docs/nonconservative.md)

    python benchmarks/toy_budgets.py --budgets 1000 4000 16000 --widths 64 128 \
        --workdir /tmp/toy_budgets --out /tmp/toy_budgets.csv

For each MLP width (`toy.model.width`, the rest of `toy:` as in config.yaml) the toy score model is trained by
the package's own loop (`toy.fit_toy_model`) to each step budget in turn, resuming from the previous budget's
checkpoint (constant learning rate after warm-up, and `train.steps` is not part of the resume hash, so a run
trained in legs equals one trained in one go). After each leg the learned field goes through
`toy.analyse_toy_field`, the code of the analyse_toy rule, and one row per t is printed with the three
measures of where its skew part acts. One torch thread.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from score_geometry.sde import VPSDE
from score_geometry.toy import (SphereVMFMixture, analyse_toy_field, fit_toy_model, learned_score_fn,
                                summarise_toy)

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = {"score_rel_err_median": "score err", "asymmetry_median": "||J-J^T||/||J||",
           "tangent_share_median": "(a) tangent share", "cross_share_median": "(a) cross share",
           "rel_tangent_median": "(b) rel tangent", "rel_cross_median": "(b) rel cross",
           "rel_ratio_median": "(b) ratio", "curl_tangent_rel_curl_median": "(c) |n.curl|/|curl|",
           "curl_tangent_rel_jac_median": "(c) |n.curl|/||J||"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", type=int, nargs="+", default=[1000, 4000, 16000], help="training steps, ascending")
    ap.add_argument("--widths", type=int, nargs="+", default=[64, 128], help="MLP hidden units")
    ap.add_argument("--config", type=Path, default=ROOT / "config.yaml", help="config whose toy: and sde: are used")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/toy_budgets"), help="checkpoints (resumed)")
    ap.add_argument("--out", type=Path, default=None, help="optional CSV of the full per-t summaries")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = yaml.safe_load(args.config.read_text())
    toy_base, sde_cfg = cfg["toy"], cfg["sde"]
    sde = VPSDE(**sde_cfg)
    surface = SphereVMFMixture.from_config(toy_base["surface"])
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for width in args.widths:
        for steps in sorted(args.budgets):
            toy = copy.deepcopy(toy_base)
            toy["model"]["width"] = width
            toy["train"].update(steps=steps, checkpoint_every=min(steps, toy["train"]["checkpoint_every"]))
            t0 = time.process_time()
            ckpt, _ = fit_toy_model(toy, sde_cfg, checkpoint_path=args.workdir / f"width{width}.pt",
                                    metrics_path=args.workdir / f"width{width}.jsonl", progress=False)
            t1 = time.process_time()
            summary = summarise_toy(analyse_toy_field(learned_score_fn(ckpt, sde), surface, toy, sde))
            rows.append(summary.assign(width=width, steps=steps, train_cpu_s=t1 - t0,
                                       analyse_cpu_s=time.process_time() - t1))
            print(f"width {width}, {steps} steps: leg {t1 - t0:.0f} s CPU, analysis "
                  f"{time.process_time() - t1:.0f} s CPU", flush=True)
    table = pd.concat(rows, ignore_index=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
    show = table[["width", "steps", "t", *COLUMNS]].rename(columns=COLUMNS).astype({"width": str, "steps": str})
    print(show.to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main()
