"""Training: determinism, bit-identical resume after SIGKILL, NaN handling, metrics, EMA."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import E2E_TIMEOUT
from score_geometry import io
from score_geometry.train import (final_checkpoint, fit_score_model, load_ema_model, resume_hash, train_model,
                                  update_ema)

CFG = {
    "seed": 3,
    "data": {"dataset": "synthetic"},
    "sde": {"beta_min": 0.1, "beta_max": 20.0},
    "model": {"parameterisation": "x0", "channels": [4, 8, 8], "num_res_blocks": 1, "attention": True,
              "dropout": 0.1, "groups": 2},
    "train": {"steps": 12, "batch_size": 8, "lr": 1e-3, "warmup_steps": 3, "ema_decay": 0.99, "grad_clip": 1.0,
              "t_min": 1e-5, "t_sampling": "uniform", "loss": "native", "checkpoint_every": 4, "log_every": 2},
}


def _images(n=64, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _weights(state_or_ckpt):
    return state_or_ckpt["state"]["model"], state_or_ckpt["state"]["ema"]


def _assert_identical(sd_a, sd_b):
    assert sd_a.keys() == sd_b.keys()
    for k in sd_a:
        assert torch.equal(sd_a[k], sd_b[k]), k


def test_training_is_deterministic_and_logs_metrics(tmp_path):
    a = train_model(_images(), CFG, checkpoint_path=tmp_path / "a.pt", metrics_path=tmp_path / "a.jsonl",
                    progress=False)
    b = train_model(_images(), CFG, checkpoint_path=tmp_path / "b.pt", metrics_path=tmp_path / "b.jsonl",
                    progress=False)
    _assert_identical(a.model.state_dict(), b.model.state_dict())
    _assert_identical(a.ema.state_dict(), b.ema.state_dict())
    records = io.read_jsonl(tmp_path / "a.jsonl")
    assert [r["step"] for r in records] == [2, 4, 6, 8, 10, 12]
    assert all({"loss", "ema_loss", "lr", "steps_per_s"} <= r.keys() for r in records)
    # A different seed gives different weights (the test can fail).
    c = train_model(_images(), {**CFG, "seed": 4}, checkpoint_path=tmp_path / "c.pt",
                    metrics_path=tmp_path / "c.jsonl", progress=False)
    assert not torch.equal(a.model.conv_in.weight, c.model.conv_in.weight)
    # EMA differs from the raw weights but loads as an eval-mode network.
    ema = load_ema_model(final_checkpoint(a, CFG))
    assert not ema.training and not torch.equal(ema.conv_in.weight, a.model.conv_in.weight)


def _untimed(records):
    return [{k: v for k, v in r.items() if k != "steps_per_s"} for r in records]


_WORKER = r"""
import sys, json, torch
torch.set_num_threads(1)
from score_geometry.train import train_model
cfg = json.loads(sys.argv[1])
images = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
train_model(images, cfg, checkpoint_path=sys.argv[2], metrics_path=sys.argv[3], progress=False)
"""


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    cfg = json.loads(json.dumps(CFG))
    cfg["train"].update(steps=400, checkpoint_every=5, log_every=5)
    ckpt, metrics = tmp_path / "state.pt", tmp_path / "metrics.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _WORKER, json.dumps(cfg), str(ckpt), str(metrics)], env=env)
    try:
        deadline = time.time() + E2E_TIMEOUT  # left as soon as step 10 is saved
        while time.time() < deadline and not (ckpt.exists() and io.load_checkpoint(ckpt)["state"]["step"] >= 10):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    killed_at = io.load_checkpoint(ckpt)["state"]["step"]
    assert 10 <= killed_at < 400, "the worker must be killed mid-run"

    # Resume in a fresh process, as Snakemake would on a rerun.
    subprocess.run([sys.executable, "-c", _WORKER, json.dumps(cfg), str(ckpt), str(metrics)], env=env, check=True)
    resumed = io.load_checkpoint(ckpt)
    assert resumed["state"]["step"] == 400

    uninterrupted = tmp_path / "ref.pt"
    subprocess.run([sys.executable, "-c", _WORKER, json.dumps(cfg), str(uninterrupted), str(tmp_path / "ref.jsonl")],
                   env=env, check=True)
    ref = io.load_checkpoint(uninterrupted)
    for a, b in zip(_weights(resumed), _weights(ref)):
        _assert_identical(a, b)
    # The metrics log continues without duplicated or missing steps, and matches the uninterrupted run's
    # record for record (ema_loss included); only the timing differs.
    steps = [r["step"] for r in io.read_jsonl(metrics)]
    assert steps == list(range(5, 401, 5))
    assert _untimed(io.read_jsonl(metrics)) == _untimed(io.read_jsonl(tmp_path / "ref.jsonl"))


def test_checkpoint_from_other_config_is_not_resumed(tmp_path):
    ckpt = tmp_path / "state.pt"
    train_model(_images(), CFG, checkpoint_path=ckpt, metrics_path=tmp_path / "m.jsonl", progress=False)
    other = json.loads(json.dumps(CFG))
    other["train"]["lr"] = 2e-3
    assert resume_hash(other) != resume_hash(CFG)
    state = train_model(_images(), other, checkpoint_path=ckpt, metrics_path=tmp_path / "m.jsonl", progress=False)
    assert state.step == CFG["train"]["steps"]
    assert io.load_checkpoint(ckpt)["config_hash"] == resume_hash(other)
    # Raising only the step count continues the same run.
    longer = json.loads(json.dumps(other))
    longer["train"]["steps"] = 16
    assert resume_hash(longer) == resume_hash(other)


def test_resume_hash_ignores_where_the_data_is_read_from():
    base = {**CFG, "data": {"dataset": "mnist", "root": "data", "download": False, "idx_dir": "/x"}}
    moved = {**base, "data": {"dataset": "mnist", "root": "/elsewhere", "download": True, "idx_dir": "/y"}}
    assert resume_hash(moved) == resume_hash(base)
    other_images = {**base, "data": {**base["data"], "dataset": "fashion-mnist"}}
    assert resume_hash(other_images) != resume_hash(base)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    ckpt = tmp_path / "state.pt"
    cfg = json.loads(json.dumps(CFG))
    cfg["train"]["steps"] = 8
    train_model(_images(), cfg, checkpoint_path=ckpt, metrics_path=tmp_path / "m.jsonl", progress=False)
    good = io.load_checkpoint(ckpt)
    assert good["state"]["step"] == 8
    bad = _images()
    bad[:] = float("nan")
    cfg["train"]["steps"] = 12
    with pytest.raises(FloatingPointError, match=r"non-finite training loss .* at step 9.*last good checkpoint"):
        train_model(bad, cfg, checkpoint_path=ckpt, metrics_path=tmp_path / "m.jsonl", progress=False)
    kept = io.load_checkpoint(ckpt)
    assert kept["state"]["step"] == 8
    for a, b in zip(_weights(kept), _weights(good)):
        _assert_identical(a, b)


def test_update_ema_warms_up():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    with torch.no_grad():
        a.weight.zero_()
        b.weight.fill_(1.0)
    update_ema(a, b, decay=0.999, step=0)  # d = min(0.999, 1/10)
    assert torch.allclose(a.weight, torch.full((2, 2), 0.9))


def test_resumed_metrics_match_an_uninterrupted_run(tmp_path):
    ref = train_model(_images(), CFG, checkpoint_path=tmp_path / "ref.pt", metrics_path=tmp_path / "ref.jsonl",
                      progress=False)
    short = json.loads(json.dumps(CFG))
    short["train"]["steps"] = 6  # its final state (step 6) is what the longer run below resumes from
    train_model(_images(), short, checkpoint_path=tmp_path / "a.pt", metrics_path=tmp_path / "a.jsonl",
                progress=False)
    resumed = train_model(_images(), CFG, checkpoint_path=tmp_path / "a.pt", metrics_path=tmp_path / "a.jsonl",
                          progress=False)
    _assert_identical(resumed.ema.state_dict(), ref.ema.state_dict())
    assert _untimed(io.read_jsonl(tmp_path / "a.jsonl")) == _untimed(io.read_jsonl(tmp_path / "ref.jsonl"))


def test_resume_state_without_ema_loss_still_resumes(tmp_path):
    # Training states written before ema_loss was checkpointed: resumed, ema_loss restarts from the next loss.
    short = json.loads(json.dumps(CFG))
    short["train"]["steps"] = 8
    train_model(_images(), short, checkpoint_path=tmp_path / "a.pt", metrics_path=tmp_path / "a.jsonl",
                progress=False)
    old = io.load_checkpoint(tmp_path / "a.pt")
    old["state"].pop("ema_loss", None)
    io.save_checkpoint(tmp_path / "a.pt", old)
    state = train_model(_images(), CFG, checkpoint_path=tmp_path / "a.pt", metrics_path=tmp_path / "a.jsonl",
                        progress=False)
    assert state.step == 12
    records = io.read_jsonl(tmp_path / "a.jsonl")
    assert [r["step"] for r in records] == [2, 4, 6, 8, 10, 12]
    assert all(math.isfinite(r["ema_loss"]) for r in records)


def test_corrupt_training_state_is_set_aside_and_training_starts_fresh(tmp_path, caplog):
    ckpt = tmp_path / "train_state.pt"
    ckpt.write_bytes(b"PK\x03\x04 torn by a crash" * 10)
    with caplog.at_level("WARNING"):
        state = train_model(_images(), CFG, checkpoint_path=ckpt, metrics_path=tmp_path / "m.jsonl", progress=False)
    assert state.step == CFG["train"]["steps"]
    assert io.load_checkpoint(ckpt)["state"]["step"] == CFG["train"]["steps"]
    aside = list(tmp_path.glob("train_state.pt.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == b"PK\x03\x04 torn by a crash" * 10
    assert "starting fresh" in caplog.text and aside[0].name in caplog.text
    # Fresh means identical to a run that never saw the corrupt file.
    ref = train_model(_images(), CFG, checkpoint_path=tmp_path / "ref.pt", metrics_path=tmp_path / "r.jsonl",
                      progress=False)
    _assert_identical(state.ema.state_dict(), ref.ema.state_dict())


def test_fit_score_model_trains_the_unet_or_fits_the_oracle(tmp_path):
    """The train_model rule's call: the trained U-Net's reference (EMA weights) or the oracle's, with options."""
    cfg = {**CFG, "model": {**CFG["model"], "score_model": "unet"}}
    ckpt, options = fit_score_model(_images(), cfg, checkpoint_path=tmp_path / "a.pt",
                                    metrics_path=tmp_path / "a.jsonl")
    assert ckpt["kind"] == "unet" and ckpt["step"] == options["final_step"] == CFG["train"]["steps"]
    _assert_identical(ckpt["state"]["ema"], io.load_checkpoint(tmp_path / "a.pt")["state"]["ema"])
    oracle = {**cfg, "model": {**cfg["model"], "score_model": "gaussian_oracle", "oracle_rank": 3}}
    ckpt, options = fit_score_model(_images(), oracle, checkpoint_path=tmp_path / "b.pt",
                                    metrics_path=tmp_path / "b.jsonl")
    assert ckpt["kind"] == "gaussian_oracle" and ckpt["state"]["basis"].shape == (784, 3)
    assert options["final_step"] == 0 and io.read_jsonl(tmp_path / "b.jsonl")[0]["oracle_rank"] == 3
    with pytest.raises(ValueError, match="model.score_model must be one of"):
        fit_score_model(_images(), {**cfg, "model": {**cfg["model"], "score_model": "vae"}},
                        checkpoint_path=tmp_path / "c.pt", metrics_path=tmp_path / "c.jsonl")
