"""The command line: the pipeline's analysis of a handful of images, without Snakemake.

    score-geometry analyse --model results/default/model/model.pt --images digits.npy --times 0.01 0.3 --out out/
    score-geometry analyse --source diffusers --path ddpm-mnist/ --images digits.npy --out out/
    score-geometry analyse --source callable --path my_model.py:build --parameterisation eps --dataset mnist5k \
        --n-images 4 --out out/

Writes the tidy tables of `results/<run>/stats/` for these images (spectra, local_dims, overlaps, diagnostics
as Parquet; summary and calibration as CSV and Markdown) and prints the per-t summary: r_t and the
calibration ratio (is r_t measuring geometry? docs/calibration.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from . import io

SOURCES = ("callable", "export", "torchscript", "diffusers")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="score-geometry", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    a = sub.add_parser("analyse", help="score Jacobians and their spectra at a few noisy images")
    model = a.add_argument_group("the score model (one of)")
    model.add_argument("--model", type=Path, help="a model reference written by the workflow (model/model.pt)")
    model.add_argument("--source", choices=SOURCES, help="an external model (as the config's model.source)")
    model.add_argument("--path", help="with --source: module:function, file.py:function, a file or a directory")
    model.add_argument("--parameterisation", choices=("eps", "x0"), default="eps",
                       help="with --source callable/export/torchscript: what the network predicts (default eps)")
    model.add_argument("--beta-min", type=float, default=0.1, help="with --source: the VP-SDE (default 0.1)")
    model.add_argument("--beta-max", type=float, default=20.0, help="with --source: the VP-SDE (default 20)")
    imgs = a.add_argument_group("the images (one of)")
    imgs.add_argument("--images", type=Path, help=".npy file (n, C, H, W) of clean images in [-1, 1]")
    imgs.add_argument("--dataset", choices=("mnist5k", "fashion-mnist"), help="held-out images of a data set")
    imgs.add_argument("--n-images", type=int, default=4, help="with --dataset: how many (default 4)")
    a.add_argument("--times", type=float, nargs="+", default=[0.01, 0.03, 0.05, 0.15, 0.3])
    a.add_argument("--kappa", type=float, default=0.1, help="r_t slack (default 0.1, the paper's)")
    a.add_argument("--seed", type=int, default=0, help="forward-noise seed")
    a.add_argument("--device", default="auto", help="auto | cpu | cuda")
    a.add_argument("--out", type=Path, required=True, help="output directory")
    return ap


def _model(args: argparse.Namespace, image_shape: tuple[int, ...], device):
    from .score_models import check_score_model, external_reference, load_score_model

    if args.model is not None:
        return load_score_model(io.load_checkpoint(args.model, map_location=device), device=device)
    if not args.path:
        raise SystemExit("score-geometry analyse: --source needs --path")
    cfg = {"sde": {"beta_min": args.beta_min, "beta_max": args.beta_max},
           "model": {"source": args.source, "path": args.path, "kwargs": {}, "parameterisation": args.parameterisation}}
    model = load_score_model(external_reference(cfg, image_shape), device=device)
    check_score_model(model, image_shape)
    return model


def _images(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray | None]:
    if args.images is not None:
        return np.load(args.images).astype(np.float32), None
    from .datasets import load_dataset, to_model_range

    data = load_dataset({"dataset": args.dataset, "root": "data", "download": False,
                         "idx_dir": "/usr/share/datasets/fashion-mnist", "heldout_per_class": 50, "split_seed": 0})
    n = min(args.n_images, len(data.heldout_images))
    return to_model_range(data.heldout_images[:n]).numpy(), data.heldout_labels[:n]


def analyse(args: argparse.Namespace) -> int:
    from .report import markdown_table
    from .runtime import resolve_device
    from .stages import analyse_images

    if (args.model is None) == (args.source is None):
        raise SystemExit("score-geometry analyse: give exactly one of --model and --source")
    if (args.images is None) == (args.dataset is None):
        raise SystemExit("score-geometry analyse: give exactly one of --images and --dataset")
    for path in (args.model, args.images):
        if path is not None and not path.is_file():
            raise SystemExit(f"score-geometry analyse: no such file {path}")
    device = resolve_device(args.device)
    images, labels = _images(args)
    model = _model(args, tuple(images.shape[1:]), device)
    tables = analyse_images(model, images, args.times, seed=args.seed, labels=labels, kappa=args.kappa,
                            device=device)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("spectra", "local_dims", "overlaps", "diagnostics"):
        io.write_parquet(args.out / f"{name}.parquet", tables[name])
    for name in ("summary", "calibration"):
        io.write_csv(args.out / f"{name}.csv", tables[name])
        io.write_text(args.out / f"{name}.md", markdown_table(tables[name], floatfmt=".3f"))
    print(tables["calibration"].to_string(index=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "analyse":
        return analyse(args)
    return 2  # pragma: no cover (argparse requires a command)


if __name__ == "__main__":
    sys.exit(main())
