"""The command line: the pipeline's analysis of a handful of images, without Snakemake.

    score-geometry analyse --model results/default/model/model.pt --images digits.npy --times 0.01 0.3 --out out/
    score-geometry analyse --source diffusers --path ddpm-mnist/ --images digits.npy --out out/
    score-geometry analyse --source callable --path my_model.py:build --parameterisation eps --dataset mnist5k \
        --n-images 4 --out out/

Writes the tidy tables of `results/<run>/stats/` for these images (spectra, local_dims, overlaps, diagnostics
as Parquet; summary and calibration as CSV and Markdown) and prints the per-t summary: r_t and the
calibration ratio (is r_t measuring geometry? docs/calibration.md).

A mistake in the arguments or in the files they name is one line on stderr, naming the argument or the file
and what was expected, with exit code 2, and nothing is written to --out; --debug (or SCORE_GEOMETRY_DEBUG=1)
adds the traceback. --images takes floating values in [-1, 1], or uint8 pixels in [0, 255], which are
rescaled to [-1, 1] with a note on stderr.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from . import __version__, io

SOURCES = ("callable", "export", "torchscript", "diffusers")
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_TIMES = (0.01, 0.03, 0.05, 0.15, 0.3)  # the config's sample.times
#: how far outside [-1, 1] a floating image may stray (round-off of the user's scaling); it is then clipped
RANGE_TOLERANCE = 1e-3
DEBUG_ENV = "SCORE_GEOMETRY_DEBUG"
#: load_checkpoint's advice for --model: a user's file, not one of the workflow's own to rebuild
CHECKPOINT_ADVICE = ("not a checkpoint written by torch.save by this workflow (--model takes a run's "
                     "results/<run>/model/model.pt; for your own model use --source with --path)")


class UsageError(Exception):
    """A mistake in the arguments or in the files they name: one line on stderr and exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (exit code 2), like the CLI's other usage errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _bounded(convert: Callable[[str], float], ok: Callable[[float], bool], expected: str) -> Callable[[str], float]:
    """An argparse type: `convert` the text and keep the value if `ok` says so, else say what is `expected`."""
    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_time = _bounded(float, lambda t: 0 < t <= 1, "a time in (0, 1]")  # NaN fails every comparison
_nonnegative = _bounded(float, lambda v: 0 <= v < math.inf, "a finite number >= 0")
_positive = _bounded(float, lambda v: 0 < v < math.inf, "a finite number > 0")
_seed = _bounded(int, lambda v: v >= 0, "an integer >= 0")
_count = _bounded(int, lambda v: v >= 1, "an integer >= 1")


def _parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="score-geometry", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    a = sub.add_parser("analyse", help="score Jacobians and their spectra at a few noisy images")
    model = a.add_argument_group("the score model (one of)")
    model.add_argument("--model", type=Path, help="a model reference written by the workflow (model/model.pt)")
    model.add_argument("--source", choices=SOURCES, help="an external model (as the config's model.source)")
    model.add_argument("--path", help="with --source: module:function, file.py:function, a file or a directory")
    model.add_argument("--parameterisation", choices=("eps", "x0"), default="eps",
                       help="with --source callable/export/torchscript: what the network predicts (default eps)")
    model.add_argument("--beta-min", type=_positive, default=0.1, help="with --source: the VP-SDE (default 0.1)")
    model.add_argument("--beta-max", type=_positive, default=20.0, help="with --source: the VP-SDE (default 20)")
    imgs = a.add_argument_group("the images (one of)")
    imgs.add_argument("--images", type=Path,
                      help=".npy file (n, C, H, W), or (n, H, W) grey, of clean images: floating values in "
                           "[-1, 1], or uint8 pixels in [0, 255] (rescaled to [-1, 1])")
    imgs.add_argument("--dataset", choices=("mnist5k", "fashion-mnist"), help="held-out images of a data set")
    imgs.add_argument("--n-images", type=_count, default=4, help="with --dataset: how many (default 4)")
    a.add_argument("--times", type=_time, nargs="+", default=list(DEFAULT_TIMES), metavar="T",
                   help="diffusion times at which to analyse, each in (0, 1], strictly increasing, as the "
                        f"config's sample.times (default: {' '.join(map(str, DEFAULT_TIMES))})")
    a.add_argument("--kappa", type=_nonnegative, default=0.1, help="r_t slack, >= 0 (default 0.1, the paper's)")
    a.add_argument("--seed", type=_seed, default=0, help="forward-noise seed, >= 0 (default 0)")
    a.add_argument("--method", choices=("auto", "exact", "lowrank"), default="auto",
                   help="exact: the D x D Jacobians; lowrank: matrix-free (Jacobian-vector products only, the "
                        "computed ranks of the spectra); auto: exact up to D = 12,288, lowrank above (default)")
    a.add_argument("--k-max", type=_count, default=1024,
                   help="with the lowrank route: the most singular triplets per Jacobian (default 1024)")
    a.add_argument("--device", choices=DEVICES, default="auto", help="auto | cpu | cuda (default auto)")
    a.add_argument("--out", type=Path, required=True, help="output directory")
    a.add_argument("--debug", action="store_true", help=f"on an error, print the traceback too (or set {DEBUG_ENV}=1)")
    return ap


@contextmanager
def _blame(what: str | None, *errors: type[BaseException]) -> Iterator[None]:
    """Turn `errors` raised inside into a UsageError: `what` (the argument and its value) and the error's line."""
    try:
        yield
    except errors as e:
        text = str(e).strip()
        line = text.splitlines()[0] if text and not isinstance(e, KeyError) else io._first_line(e)
        raise UsageError(f"{what}: {line}" if what else line) from e


def check_times(times: Sequence[float]) -> list[float]:
    """--times by the rule of the config's sample.times: each in (0, 1] (its argparse type) and strictly
    increasing, so no duplicates."""
    if any(b <= a for a, b in zip(times, times[1:])):
        raise UsageError(f"--times {' '.join(map(str, times))}: expected strictly increasing times (sorted, no "
                         "duplicates), each in (0, 1], as the config's sample.times")
    return list(times)


def _check_args(args: argparse.Namespace) -> None:
    """The arguments' combinations and named files, before anything is loaded."""
    if (args.model is None) == (args.source is None):
        raise UsageError("give exactly one of --model and --source")
    if (args.source is None) != (args.path is None):
        raise UsageError("--source needs --path" if args.path is None else "--path goes with --source")
    if (args.images is None) == (args.dataset is None):
        raise UsageError("give exactly one of --images and --dataset")
    for flag, path in (("--model", args.model), ("--images", args.images)):
        if path is not None and not path.is_file():
            raise UsageError(f"{flag}: no such file {path}")
    if args.beta_min >= args.beta_max:
        raise UsageError(f"--beta-min {args.beta_min} must be < --beta-max {args.beta_max}")
    check_times(args.times)


def check_out(out: Path) -> None:
    """--out must be a directory, or creatable as one, that can be written to. Checked before any computation;
    nothing is created until the tables are written."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    base = next(p for p in (out.absolute(), *out.absolute().parents) if p.exists())
    if not base.is_dir():
        raise UsageError(f"--out {out}: {base} is not a directory, so the output directory cannot be created")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: {base} is not writable")


def check_images(images: np.ndarray) -> tuple[np.ndarray, str | None]:
    """Clean images from a user's array as the analysis takes them: (n, C, H, W) float32 in [-1, 1].

    Takes (n, C, H, W), or (n, H, W) grey; n >= 1; floating, finite values in [-1, 1] (up to
    `RANGE_TOLERANCE`, then clipped), or uint8 pixels in [0, 255], rescaled as p / 127.5 - 1.

    Returns:
        The images and a note to print (the rescaling), or None.

    Raises:
        ValueError: what is wrong and what was expected.
    """
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise ValueError(f"an array of shape {images.shape}: expected (n, C, H, W), or (n, H, W) for grey images")
    if len(images) == 0:
        raise ValueError(f"no images (shape {images.shape}): expected at least one")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 127.5 - 1, "uint8 pixels in [0, 255] rescaled to [-1, 1] (p / 127.5 - 1)"
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"dtype {images.dtype}: expected floating values in [-1, 1], or uint8 pixels in [0, 255]")
    bad = int(np.count_nonzero(~np.isfinite(images)))
    if bad:
        raise ValueError(f"{bad} of {images.size} values are NaN or infinite: expected finite values in [-1, 1]")
    low, high = float(images.min()), float(images.max())
    if low < -1 - RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise ValueError(f"values in [{low:.4g}, {high:.4g}]: expected [-1, 1] (pixels p in [0, 255] map to "
                         "p / 127.5 - 1)")
    return np.clip(images, -1, 1).astype(np.float32), None


def _read_images(path: Path) -> np.ndarray:
    """The images of an --images file, checked (`check_images`); only a .npy array, never unpickled."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:  # numpy's messages here suggest unpickling: not passed on
        raise UsageError(f"--images {path}: not a .npy file of numbers (as numpy.save writes it): expected an "
                         "array (n, C, H, W) of images") from e
    if not isinstance(array, np.ndarray):  # an .npz archive
        array.close()
        raise UsageError(f"--images {path}: an .npz archive: expected one array saved with numpy.save (.npy)")
    with _blame(f"--images {path}", ValueError):
        images, note = check_images(array)
    if note:
        print(f"score-geometry analyse: note: --images {path}: {note}", file=sys.stderr)
    return images


def _images(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray | None]:
    if args.images is not None:
        return _read_images(args.images), None
    from .datasets import load_dataset, to_model_range

    with _blame(f"--dataset {args.dataset}", OSError, ValueError):
        data = load_dataset({"dataset": args.dataset, "root": "data", "download": False,
                             "idx_dir": "/usr/share/datasets/fashion-mnist", "heldout_per_class": 50,
                             "split_seed": 0})
    n = min(args.n_images, len(data.heldout_images))
    return to_model_range(data.heldout_images[:n]).numpy(), data.heldout_labels[:n]


def _model(args: argparse.Namespace, image_shape: tuple[int, ...], device):
    """The score model, checked to take `image_shape` and to give a finite score at every analysed time."""
    from .score_models import ModelLoadError, check_score_model, load_external, load_score_model

    if args.model is None:
        with _blame(None, ModelLoadError), _blame(f"--source {args.source}", ImportError):
            return load_external(args.source, args.path, parameterisation=args.parameterisation,
                                 beta_min=args.beta_min, beta_max=args.beta_max, image_shape=image_shape,
                                 device=device, times=args.times)
    try:
        reference = io.load_checkpoint(args.model, map_location=device, advice=CHECKPOINT_ADVICE)
    except io.CorruptFileError as e:
        raise UsageError(f"--model {e}") from e
    with _blame(f"--model {args.model}", ImportError, ValueError, TypeError, KeyError):  # ModelLoadError too
        model = load_score_model(reference, device=device)
        check_score_model(model, image_shape, times=args.times, device=device)
    return model


def analyse(args: argparse.Namespace) -> int:
    """`score-geometry analyse`: every input checked (`UsageError`) before any computation or output."""
    from .report import markdown_table
    from .runtime import resolve_device
    from .stages import analyse_images

    _check_args(args)
    check_out(args.out)
    with _blame(f"--device {args.device}", RuntimeError, ValueError):
        device = resolve_device(args.device)
    images, labels = _images(args)
    model = _model(args, tuple(images.shape[1:]), device)
    tables = analyse_images(model, images, args.times, seed=args.seed, labels=labels, kappa=args.kappa,
                            device=device, route=args.method, k_max=args.k_max)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("spectra", "local_dims", "overlaps", "diagnostics"):
        io.write_parquet(args.out / f"{name}.parquet", tables[name])
    for name in ("summary", "calibration"):
        io.write_csv(args.out / f"{name}.csv", tables[name])
        io.write_text(args.out / f"{name}.md", markdown_table(tables[name], floatfmt=".3f"))
    print(tables["calibration"].to_string(index=False))
    return 0


def _debug(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def main(argv: list[str] | None = None) -> int:
    """Run a command: 0 on success; a usage error is one line and 2, any other error one line and 1 (with
    the traceback under --debug or SCORE_GEOMETRY_DEBUG=1)."""
    args = _parser().parse_args(argv)
    prog = f"score-geometry {args.command}"
    logging.basicConfig(format=f"{prog}: %(message)s", level=logging.WARNING)
    try:
        return analyse(args)
    except Exception as e:  # noqa: BLE001 - every error ends as one line (or the traceback under --debug)
        if _debug(args):
            traceback.print_exc()
        if isinstance(e, UsageError):
            print(f"{prog}: {e}", file=sys.stderr)
            return 2
        print(f"{prog}: unexpected error: {io._first_line(e)} (rerun with --debug or {DEBUG_ENV}=1 for the "
              "traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
