"""All reading and writing of the pipeline's own files: checkpoints, HDF5 arrays, JSON/JSONL metrics.

Every write is atomic (written to a temporary name in the same directory, then renamed), so a job
killed mid-write never leaves a file that looks complete; outputs get the usual umask-derived mode, and
equal content gives equal bytes. A file that cannot be read raises `CorruptFileError` naming it and the fix.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import pickle
import re
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import h5py
import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from .datasets import Dataset

log = logging.getLogger(__name__)


class CorruptFileError(ValueError):
    """A file exists but cannot be read (truncated, damaged, or not what the pipeline writes there)."""

    def __init__(self, path: str | os.PathLike, reason: str, advice: str | None = None) -> None:
        self.path, self.reason, self.advice = path, reason, advice
        # the default advice is for the workflow's own files; a file a user gave gets the caller's `advice`
        super().__init__(f"{path}: {reason}; {advice}" if advice else
                         f"{path} is corrupt or truncated ({reason}); delete it and rerun the rule that writes it "
                         f"(snakemake --forcerun {path}, with your usual --cores/--configfile)")

    def __reduce__(self) -> tuple:  # picklable although __init__ takes several arguments
        return type(self), (self.path, self.reason, self.advice)


#: what HDF5 says about a damaged file (anything else, e.g. "unable to lock file", is not the file's fault)
_H5_DAMAGE = ("truncated", "signature not found", "bad object header", "checksum", "addr overflow", "bad heap",
              "bad symbol table", "b-tree signature", "can't read data", "inflate() failed", "filter returned failure",
              "not an hdf5 file", "eof")


def _h5_error(path: str | os.PathLike, e: OSError) -> OSError | CorruptFileError:
    """CorruptFileError for a damaged HDF5 file; for anything else (a lock held by another process, a file
    system without locking, I/O errors) an OSError naming the file, and no advice to delete it."""
    if any(sign in str(e).lower() for sign in _H5_DAMAGE):
        return _corrupt(path, "HDF5", _first_line(e))
    return OSError(f"{path}: cannot read this HDF5 file ({_first_line(e)}); it is not reported as damaged. If another "
                   "process has it open, wait for it; on a file system without locking set "
                   "HDF5_USE_FILE_LOCKING=FALSE")


def _corrupt(path: str | os.PathLike, what: str, reason: str, advice: str | None = None) -> CorruptFileError:
    return CorruptFileError(path, f"{what}: {reason}", advice)


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else '(no message)'}"


# mkstemp's temporary names: "." + output name + "." + 8 characters of this alphabet + ".tmp".
_TMP_RANDOM = "[a-z0-9_]{8}"


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (/proc), else set-and-restore."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporaries of `path` left by a writer killed mid-write (only this output's own pattern; Snakemake
    never runs two jobs that write the same output, so none of them is being written now)."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.{_TMP_RANDOM}\.tmp")
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if pattern.fullmatch(stale.name):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The file gets mode 0o666 minus the umask (as `open` would give it, not mkstemp's 0o600), and temporaries
    of the same output left by a killed writer are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def unwritable(path: str | os.PathLike) -> str | None:
    """Why files cannot be created under the directory `path` (which need not exist yet), or None if they can:
    checked on its nearest existing ancestor, so a run can refuse to start instead of failing in its first job."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        return f"{p} is not a directory"
    if not os.access(p, os.W_OK | os.X_OK):
        return f"{p} is not writable by this user"
    return None


def config_hash(cfg: Mapping[str, Any]) -> str:
    """A stable short hash of a JSON-able config mapping (key order does not matter)."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --- JSON ---------------------------------------------------------------------------------------

def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    text = Path(path).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise _corrupt(path, "JSON", str(e)) from None


def read_yaml(path: str | os.PathLike) -> Any:
    """A YAML file (the workflow's config schema) as plain Python data."""
    import yaml

    return yaml.safe_load(Path(path).read_text())


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
    """Save a dict of state_dicts, tensors and plain data (never pickled modules), atomically.

    Saved through a file object, so the zip entries are named ``archive/...`` rather than after the random
    temporary file: equal payloads give byte-identical files.
    """
    import torch  # here, not at the top: the workflow imports this module while it builds the DAG

    with atomic_path(path) as tmp, tmp.open("wb") as f:
        torch.save(dict(payload), f)


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu",
                    advice: str | None = None) -> dict:
    """Load a checkpoint written by `save_checkpoint` (weights_only: no arbitrary code is unpickled).

    Args:
        advice: what the error tells the user to do when the file cannot be read. None: the workflow's own
            file, delete it and rerun its rule (``snakemake --forcerun``); a file a user named (the CLI's
            ``--model``) gets its own, e.g. that it is not a checkpoint this workflow wrote.

    Raises:
        FileNotFoundError: it does not exist.
        CorruptFileError: it is truncated or damaged, or holds more than tensors and plain data (or, with
            `advice`, anything torch.load cannot read).
    """
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except OSError:  # missing or unreadable: the OS error names the file
        raise
    except Exception as e:
        # torch's messages for these advise weights_only=False, i.e. running whatever the file holds: never
        # pass them on (hence `from None` too).
        if not _is_intact_zip(path):
            raise _corrupt(path, "checkpoint", "not a complete zip archive", advice) from None
        if isinstance(e, pickle.UnpicklingError):
            raise _corrupt(path, "checkpoint", "it holds more than tensors and plain data, so it was not written "
                                               "by save_checkpoint or its contents are damaged", advice) from None
        if advice:  # e.g. a TorchScript archive; torch's first sentence only (the rest advises weights_only=False)
            raise _corrupt(path, "checkpoint", _first_line(e).split(". ")[0].replace("weights_only", "weights-only"),
                           advice) from None
        raise RuntimeError(f"cannot load checkpoint {path} (map_location={map_location}): "
                           f"{_first_line(e).replace('weights_only', 'weights-only')}") from None


def _is_intact_zip(path: str | os.PathLike) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return z.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return False


def load_resume_state(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict | None:
    """Load a rolling training state, or None if there is none to resume from.

    A corrupt one (e.g. the disk filled up mid-write) is not fatal: it is renamed to
    ``<name>.corrupt-<time>`` for inspection, a warning is logged, and None is returned so training starts fresh.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        return load_checkpoint(path, map_location=map_location)
    except CorruptFileError as e:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = path.with_name(f"{path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            aside, n = path.with_name(f"{path.name}.corrupt-{stamp}-{n}"), n + 1
        os.replace(path, aside)
        log.warning("cannot resume from %s, it is corrupt or truncated (%s): set it aside as %s, starting fresh",
                    path, e.reason, aside.name)
        return None


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


def point_chunks(datasets: Mapping[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    """`write_h5` chunks for a Jacobian stage's output: one (image, t) per chunk for every array of 3 or more
    dimensions (a Jacobian, or one point's triplets), so one can be read without decompressing the rest."""
    return {k: (1, 1, *np.shape(v)[2:]) for k, v in datasets.items() if np.ndim(v) >= 3}


def read_h5(path: str | os.PathLike, names: list[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read datasets (all, or `names`) and attributes from an HDF5 file.

    Raises:
        FileNotFoundError: it does not exist.
        CorruptFileError: it is truncated or damaged (h5py's own message names no file).
        KeyError: a dataset in `names` is not in it.
    """
    try:
        f = h5py.File(path, "r")
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except OSError as e:
        raise _h5_error(path, e) from None
    with f:
        keys = list(f.keys()) if names is None else names
        missing = [k for k in keys if k not in f]
        if missing:
            raise KeyError(f"{path} has no dataset {missing[0]!r}; it holds {sorted(f.keys())}. Rerun the rule "
                           f"that writes it if it predates this code (snakemake --forcerun {path})")
        try:
            data = {k: f[k][()] for k in keys}
            raw_attrs = dict(f.attrs.items())
        except OSError as e:
            raise _h5_error(path, e) from None
    attrs = {}
    for k, v in raw_attrs.items():
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
    from .datasets import Dataset

    data, attrs = read_h5(path, ["train_images", "train_labels", "heldout_images", "heldout_labels"])
    return Dataset(str(attrs["name"]), data["train_images"], data["train_labels"],
                   data["heldout_images"], data["heldout_labels"])


# --- tables ---------------------------------------------------------------------------------------

def read_parquet(path: str | os.PathLike) -> "pd.DataFrame":
    """Read a table written by `write_parquet`; a damaged file raises CorruptFileError naming it."""
    import pandas as pd
    import pyarrow as pa

    if not Path(path).exists():
        raise FileNotFoundError(f"no such table: {path}")
    try:
        return pd.read_parquet(path, engine="pyarrow")
    except PermissionError:
        raise
    except (pa.ArrowException, OSError) as e:
        raise _corrupt(path, "Parquet", _first_line(e)) from None


def read_csv(path: str | os.PathLike) -> "pd.DataFrame":
    """Read a table written by `write_csv`; a damaged file raises CorruptFileError naming it."""
    import pandas as pd

    if not Path(path).exists():
        raise FileNotFoundError(f"no such table: {path}")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise _corrupt(path, "CSV", _first_line(e)) from None


def write_parquet(path: str | os.PathLike, df: "pd.DataFrame") -> None:
    """Write a tidy table as Parquet (pyarrow), atomically."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, engine="pyarrow")


def write_csv(path: str | os.PathLike, df: "pd.DataFrame") -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy a file (e.g. a training run's metrics.jsonl out of its work folder), atomically."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


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

    write_parquet(out, pd.concat([read_parquet(p) for p in paths], ignore_index=True))


def concat_h5(paths: list[str | os.PathLike], out: str | os.PathLike, *, axis0: tuple[str, ...]) -> None:
    """Concatenate the `axis0` datasets of several HDF5 files along their first axis; the other datasets
    and the attributes are taken from the first file (they must agree across shards)."""
    parts = [read_h5(p) for p in paths]
    data = dict(parts[0][0])
    for name in axis0:
        data[name] = np.concatenate([d[name] for d, _ in parts])
    write_h5(out, data, parts[0][1])


def read_input(path: str | os.PathLike | list | tuple) -> Any:
    """A file by its type, or a list of files as a list (a rule's named input, e.g. a plot rule's): Parquet and
    CSV as DataFrames, JSON as data, JSONL as a list of records, HDF5 as (datasets, attributes) (`read_h5`),
    YAML as data.

    Raises:
        ValueError: a file type not listed (read it with its own function).
    """
    if isinstance(path, (list, tuple)):
        return [read_input(p) for p in path]
    readers = {".parquet": read_parquet, ".csv": read_csv, ".json": read_json, ".jsonl": read_jsonl, ".h5": read_h5,
               ".yaml": read_yaml, ".yml": read_yaml}
    suffix = Path(path).suffix
    if suffix not in readers:
        raise ValueError(f"cannot read {path} by its type ({suffix or 'no suffix'}); known: {', '.join(readers)}")
    return readers[suffix](path)


def save_figure(fig: Any, paths: list[str | os.PathLike], *, dpi: int) -> None:
    """Save a matplotlib figure to each path (format from the suffix, e.g. PDF and PNG) atomically; close it."""
    import matplotlib.pyplot as plt

    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=str(path).rsplit(".", 1)[-1])
    plt.close(fig)
