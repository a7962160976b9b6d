"""io: corrupt files fail naming the file and the fix; atomic writes keep the umask, are byte-reproducible and clean
up after killed writers."""

from __future__ import annotations

import hashlib
import os
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from score_geometry import io


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _payload() -> dict:
    net = torch.nn.Linear(3, 2)
    with torch.no_grad():
        net.weight.copy_(torch.arange(6.0).reshape(2, 3))
        net.bias.fill_(0.5)
    return {"state": {"model": net.state_dict(), "step": 7}, "config": {"seed": 1, "times": [0.1, 0.3]}}


def _full_error(excinfo: pytest.ExceptionInfo) -> str:
    """The messages a traceback shows: the error's and those of the exceptions chained to it."""
    lines, e = [], excinfo.value
    while e is not None:
        lines += traceback.format_exception_only(e)
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    return "".join(lines)


def _assert_names_file_and_fix(excinfo: pytest.ExceptionInfo, path: Path) -> None:
    msg = str(excinfo.value)
    assert str(path) in msg, msg
    assert "corrupt or truncated" in msg and "delete it" in msg and "--forcerun" in msg, msg
    assert "weights_only" not in _full_error(excinfo), _full_error(excinfo)


# --- checkpoints ----------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_checkpoint_names_file_and_never_suggests_weights_only_false(tmp_path, damage):
    path = tmp_path / "model.pt"
    io.save_checkpoint(path, _payload())
    data = path.read_bytes()
    path.write_bytes({"garbage": b"\x80\x04not a checkpoint" * 50, "truncated": data[: len(data) // 2],
                      "empty": b""}[damage])
    with pytest.raises(io.CorruptFileError) as excinfo:
        io.load_checkpoint(path)
    _assert_names_file_and_fix(excinfo, path)


def test_checkpoint_with_pickled_objects_is_refused_without_weights_only_advice(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"module": torch.nn.Linear(2, 2)}, path)  # a pickled module: never loaded
    with pytest.raises(io.CorruptFileError) as excinfo:
        io.load_checkpoint(path)
    assert str(path) in str(excinfo.value) and "delete it" in str(excinfo.value)
    assert "weights_only" not in _full_error(excinfo)


def test_missing_checkpoint_names_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        io.load_checkpoint(tmp_path / "nope.pt")


def test_checkpoint_bytes_depend_only_on_content(tmp_path):
    # torch.save named its zip entries after the random temporary file, so equal runs gave different files.
    a, b = tmp_path / "a" / "model.pt", tmp_path / "b" / "other.pt"
    io.save_checkpoint(a, _payload())
    io.save_checkpoint(b, _payload())
    assert _sha256(a) == _sha256(b)
    back = io.load_checkpoint(a)
    assert torch.equal(back["state"]["model"]["weight"], _payload()["state"]["model"]["weight"])
    assert back["state"]["step"] == 7 and back["config"] == {"seed": 1, "times": [0.1, 0.3]}


def test_checkpoints_written_before_the_fixed_archive_name_still_load(tmp_path):
    old = tmp_path / ".model.pt.k2j4h1x9.tmp"  # what atomic_path + torch.save(path) used to write
    torch.save(_payload(), old)
    path = tmp_path / "model.pt"
    os.replace(old, path)
    assert io.load_checkpoint(path)["state"]["step"] == 7


# --- the rolling training state -------------------------------------------------------------------

def test_corrupt_resume_state_is_set_aside(tmp_path, caplog):
    path = tmp_path / "train_state.pt"
    path.write_bytes(b"\x00" * 100)
    with caplog.at_level("WARNING", logger="score_geometry.io"):
        assert io.load_resume_state(path) is None
    assert not path.exists()
    aside = list(tmp_path.glob("train_state.pt.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == b"\x00" * 100
    assert str(path) in caplog.text and aside[0].name in caplog.text
    # A second corrupt file is set aside beside the first, never over it.
    path.write_bytes(b"\x01" * 100)
    assert io.load_resume_state(path) is None
    assert len(list(tmp_path.glob("train_state.pt.corrupt-*"))) == 2
    # Missing: nothing to resume; intact: loaded.
    assert io.load_resume_state(path) is None
    io.save_checkpoint(path, _payload())
    assert io.load_resume_state(path)["state"]["step"] == 7


# --- HDF5, JSON, Parquet --------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_h5_names_file(tmp_path, damage):
    path = tmp_path / "sequences.h5"
    io.write_h5(path, {"x_t": np.random.default_rng(0).normal(size=(64, 5, 28, 28)).astype(np.float32)},
                {"seed": 1})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not hdf5" * 100)
    with pytest.raises(io.CorruptFileError) as excinfo:
        io.read_h5(path)
    _assert_names_file_and_fix(excinfo, path)


def test_h5_locked_by_another_process_is_not_called_corrupt(tmp_path):
    """A valid file that HDF5 cannot lock (another process writing it; a file system without locks) must not be
    reported as damaged with advice to delete it: an OSError naming the file and the lock instead."""
    import subprocess
    import sys

    path = tmp_path / "sequences.h5"
    io.write_h5(path, {"x_t": np.zeros((2, 3), dtype=np.float32)})
    holder = subprocess.Popen([sys.executable, "-c", f"import h5py, sys, time; f = h5py.File({str(path)!r}, 'a'); "
                               "print('open', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True,
                              env={**__import__("os").environ, "HDF5_USE_FILE_LOCKING": "TRUE"})
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(OSError) as excinfo:
            io.read_h5(path)
        assert not isinstance(excinfo.value, io.CorruptFileError)
        assert str(path) in str(excinfo.value) and "lock" in str(excinfo.value).lower()
        assert "delete" not in str(excinfo.value)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def test_corrupt_csv_names_file(tmp_path):
    path = tmp_path / "claims.csv"
    path.write_bytes(b"\xff\xfe\x00garbage\n\x00\x01")
    with pytest.raises(io.CorruptFileError) as excinfo:
        io.read_csv(path)
    _assert_names_file_and_fix(excinfo, path)


def test_corrupt_jacobian_shard_names_that_shard(tmp_path):
    good, bad = tmp_path / "shard_0.h5", tmp_path / "shard_1.h5"
    io.write_h5(good, {"features": np.zeros((2, 3))})
    io.write_h5(bad, {"features": np.zeros((2, 3))})
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(io.CorruptFileError) as excinfo:
        io.concat_h5([good, bad], tmp_path / "all.h5", axis0=("features",))
    _assert_names_file_and_fix(excinfo, bad)
    assert str(good) not in str(excinfo.value)


def test_missing_h5_dataset_names_file_and_what_it_holds(tmp_path):
    path = tmp_path / "sequences.h5"
    io.write_h5(path, {"x_t": np.zeros(3)})
    with pytest.raises(KeyError, match=r"sequences\.h5.*'J'.*x_t"):
        io.read_h5(path, ["J"])


def test_corrupt_json_and_parquet_name_file(tmp_path):
    js = tmp_path / "quality.json"
    js.write_text('{"fid": 1.')
    with pytest.raises(io.CorruptFileError) as excinfo:
        io.read_json(js)
    _assert_names_file_and_fix(excinfo, js)
    good, bad = tmp_path / "a.parquet", tmp_path / "b.parquet"
    io.write_parquet(good, pd.DataFrame({"x": [1, 2]}))
    io.write_parquet(bad, pd.DataFrame({"x": [3]}))
    bad.write_bytes(bad.read_bytes()[:20])
    with pytest.raises(io.CorruptFileError) as excinfo:
        io.concat_parquet([good, bad], tmp_path / "all.parquet")
    _assert_names_file_and_fix(excinfo, bad)
    assert io.read_parquet(good)["x"].tolist() == [1, 2]


# --- atomic writes ---------------------------------------------------------------------------------

@pytest.fixture
def umask():
    """Set the process umask for one test; restore it afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_honour_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    io.write_json(tmp_path / "a.json", {"x": 1})
    io.save_checkpoint(tmp_path / "m.pt", _payload())
    io.write_h5(tmp_path / "s.h5", {"x": np.zeros(3)})
    for name in ("a.json", "m.pt", "s.h5"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


def test_stale_temporaries_of_the_same_output_are_removed(tmp_path):
    # What a writer killed mid-write leaves behind (mkstemp: ".<name>." + 8 random characters + ".tmp").
    stale = [tmp_path / ".metrics.json.a1b2c3d4.tmp", tmp_path / ".metrics.json.zz_9yx8w.tmp"]
    others = [tmp_path / ".other.json.a1b2c3d4.tmp",          # another output's temporary
              tmp_path / ".metrics.json.a1b2c3d4.tmp.keep",   # not a temporary
              tmp_path / ".metrics.json.x.a1b2c3d4.tmp",      # the temporary of ".metrics.json.x"
              tmp_path / "metrics.json.corrupt-20240101T000000"]
    for p in stale + others:
        p.write_text("partial")
    io.write_json(tmp_path / "metrics.json", {"x": 1})
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in others)
    assert io.read_json(tmp_path / "metrics.json") == {"x": 1}


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with io.atomic_path(tmp_path / "x.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_locations(tmp_path):
    assert io.unwritable(tmp_path / "results" / "run") is None  # not there yet: its parent decides
    (tmp_path / "results").write_text("a file where the results folder should be")
    assert io.unwritable(tmp_path / "results" / "run") == f"{tmp_path / 'results'} is not a directory"


def test_read_input_reads_a_file_by_its_type_and_a_list_as_a_list(tmp_path):

    table = pd.DataFrame({"t": [0.1, 0.3], "local_dim": [3, 5]})
    io.write_parquet(tmp_path / "a.parquet", table)
    io.write_csv(tmp_path / "a.csv", table)
    io.write_json(tmp_path / "a.json", {"n": 1})
    io.append_jsonl(tmp_path / "a.jsonl", {"step": 1})
    io.write_h5(tmp_path / "a.h5", {"x": np.arange(3)}, {"t": 0.5})
    pd.testing.assert_frame_equal(io.read_input(tmp_path / "a.parquet"), table)
    pd.testing.assert_frame_equal(io.read_input(str(tmp_path / "a.csv")), table)
    assert io.read_input(tmp_path / "a.json") == {"n": 1} and io.read_input(tmp_path / "a.jsonl") == [{"step": 1}]
    data, attrs = io.read_input(tmp_path / "a.h5")
    assert data["x"].tolist() == [0, 1, 2] and attrs == {"t": 0.5}
    assert io.read_input([str(tmp_path / "a.json")] * 2) == [{"n": 1}] * 2 and io.read_input([]) == []
    with pytest.raises(ValueError, match=r"cannot read .*a\.pt by its type \(\.pt\); known: \.parquet"):
        io.read_input(tmp_path / "a.pt")
