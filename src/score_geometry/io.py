"""All reading and writing of the pipeline's own files: checkpoints, HDF5 arrays, JSON/JSONL metrics.

Every write is atomic (written to a temporary name in the same directory, then renamed), so a job
killed mid-write never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import h5py
import numpy as np
import torch

if TYPE_CHECKING:
    import pandas as pd

    from .datasets import Dataset


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def config_hash(cfg: Mapping[str, Any]) -> str:
    """A stable short hash of a JSON-able config mapping (key order does not matter)."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --- JSON ---------------------------------------------------------------------------------------

def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def append_jsonl(path: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """Append one record as a line (metrics logs; a torn last line is dropped by `read_jsonl`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(record, default=_json_default) + "\n")
        f.flush()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # torn line from a killed writer
            break
    return out


def truncate_jsonl(path: str | os.PathLike, *, max_step: int) -> None:
    """Keep only records with ``step <= max_step`` (used when training resumes from a checkpoint)."""
    path = Path(path)
    if not path.exists():
        return
    keep = [r for r in read_jsonl(path) if r.get("step", 0) <= max_step]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))


# --- checkpoints ----------------------------------------------------------------------------------

def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> None:
    """Save a dict of state_dicts, tensors and plain data (never pickled modules), atomically."""
    with atomic_path(path) as tmp:
        torch.save(dict(payload), tmp)


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by `save_checkpoint` (weights_only: no arbitrary code is unpickled)."""
    return torch.load(path, map_location=map_location, weights_only=True)


# --- HDF5 -----------------------------------------------------------------------------------------

def write_h5(path: str | os.PathLike, datasets: Mapping[str, np.ndarray], attrs: Mapping[str, Any] = (),
             *, compress: bool = True, chunks: Mapping[str, tuple[int, ...]] = ()) -> None:
    """Write named arrays and file attributes to an HDF5 file, atomically.

    Attribute values that are dicts or lists are stored as JSON strings. `chunks` sets the HDF5 chunk
    shape per dataset (e.g. one Jacobian per chunk so one can be read without decompressing the rest).
    """
    chunks = dict(chunks)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for name, arr in datasets.items():
                arr = np.asarray(arr)
                kw = {"compression": "gzip", "compression_opts": 4, "shuffle": True} if compress and arr.ndim else {}
                if name in chunks:
                    kw["chunks"] = chunks[name]
                f.create_dataset(name, data=arr, **kw)
            for key, value in dict(attrs).items():
                f.attrs[key] = json.dumps(value, default=_json_default) if isinstance(value, (dict, list)) else value


def read_h5(path: str | os.PathLike, names: list[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read datasets (all, or `names`) and attributes from an HDF5 file."""
    with h5py.File(path, "r") as f:
        keys = list(f.keys()) if names is None else names
        data = {k: f[k][()] for k in keys}
        attrs = {}
        for k, v in f.attrs.items():
            if isinstance(v, str) and v[:1] in "[{":
                with contextlib.suppress(json.JSONDecodeError):
                    v = json.loads(v)
            attrs[k] = v
    return data, attrs


# --- datasets -------------------------------------------------------------------------------------

def write_dataset(path: str | os.PathLike, ds: "Dataset", attrs: Mapping[str, Any] = ()) -> None:
    """Store a `datasets.Dataset` (uint8 images, int64 labels) as HDF5."""
    write_h5(path, {"train_images": ds.train_images, "train_labels": ds.train_labels,
                    "heldout_images": ds.heldout_images, "heldout_labels": ds.heldout_labels},
             {"name": ds.name, **dict(attrs)})


def read_dataset(path: str | os.PathLike) -> "Dataset":
    """Inverse of `write_dataset`."""
    import pandas as pd

    from .datasets import Dataset

    data, attrs = read_h5(path)
    return Dataset(str(attrs["name"]), data["train_images"], data["train_labels"],
                   data["heldout_images"], data["heldout_labels"])


# --- tables ---------------------------------------------------------------------------------------

def write_parquet(path: str | os.PathLike, df: "pd.DataFrame") -> None:
    """Write a tidy table as Parquet (pyarrow), atomically."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, engine="pyarrow")


def write_csv(path: str | os.PathLike, df: "pd.DataFrame") -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_benchmarks(paths: list[str | os.PathLike]) -> dict[str, "pd.DataFrame"]:
    """Snakemake `benchmark:` TSVs, keyed by file stem (``<rule>`` or ``<rule>_shard_<k>``)."""
    import pandas as pd

    return {Path(p).stem: pd.read_csv(p, sep="\t") for p in paths}


def concat_parquet(paths: list[str | os.PathLike], out: str | os.PathLike) -> None:
    """Concatenate tables with the same columns (shards) into one Parquet file."""
    import pandas as pd

    write_parquet(out, pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True))


def concat_h5(paths: list[str | os.PathLike], out: str | os.PathLike, *, axis0: tuple[str, ...]) -> None:
    """Concatenate the `axis0` datasets of several HDF5 files along their first axis; the other datasets
    and the attributes are taken from the first file (they must agree across shards)."""
    parts = [read_h5(p) for p in paths]
    data = dict(parts[0][0])
    for name in axis0:
        data[name] = np.concatenate([d[name] for d, _ in parts])
    write_h5(out, data, parts[0][1])


def save_figure(fig: Any, paths: list[str | os.PathLike], *, dpi: int) -> None:
    """Save a matplotlib figure to each path (format from the suffix, e.g. PDF and PNG) atomically; close it."""
    import matplotlib.pyplot as plt

    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=str(path).rsplit(".", 1)[-1])
    plt.close(fig)
