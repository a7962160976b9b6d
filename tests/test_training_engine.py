"""The training engine: exact resume (every trainer on it), checkpoint and metrics cadence, its errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from score_geometry import io
from score_geometry.training import engine

X = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
Y = X @ torch.tensor([1.0, -2.0, 0.5]) + 0.1


def assert_same(a, b, path=""):
    """Equal to the bit: tensors by torch.equal, containers recursively, anything else by ==."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (u, v) in enumerate(zip(a, b)):
            assert_same(u, v, f"{path}[{i}]")
    else:
        assert a == b, path


def untimed(path):
    return [{k: v for k, v in r.items() if k not in ("steps_per_s", "seconds")} for r in io.read_jsonl(path)]


def fresh(*, ema=True):
    # Dropout draws from the global torch RNG, which the state checkpoints too.
    return engine.init_state(lambda: nn.Sequential(nn.Linear(3, 16), nn.Dropout(0.2), nn.Linear(16, 1)),
                             lambda m: torch.optim.Adam(m.parameters(), lr=1e-2), seed=0, ema=ema)


def sgd_step(state, *, fail_at=None):
    if state.step + 1 == fail_at:
        raise FloatingPointError(f"non-finite training loss nan at step {state.step + 1}")
    idx = torch.randint(len(X), (8,), generator=state.generator)
    loss = (state.model(X[idx]).squeeze(1) - Y[idx]).pow(2).mean()
    return {"loss": engine.optimizer_step(state, loss, ema_decay=0.9 if state.ema is not None else None)}


def epoch_step(state):
    for b in torch.randperm(len(X), generator=state.generator).split(16):
        loss = (state.model(X[b]).squeeze(1) - Y[b]).pow(2).mean()
        engine.optimizer_step(state, loss)
    state.epoch += 1
    return {"last_loss": loss.item()}


def run(tmp_path, name, cfg=None):
    return engine.Run(tmp_path / f"{name}.pt", tmp_path / f"{name}.jsonl", cfg or {"lr": 1e-2}, "hash")


def test_a_run_stopped_anywhere_resumes_to_the_uninterrupted_state(tmp_path):
    kw = {"log_every": 1, "checkpoint_every": 3, "progress": False}
    ref = engine.fit(fresh(), sgd_step, total=10, run=run(tmp_path, "ref"), **kw)
    # Stopped at step 8 by an error: the checkpoint of step 6 is kept and named, the log runs on to step 7.
    with pytest.raises(FloatingPointError, match=r"at step 8; the last good checkpoint is kept at .*b\.pt"):
        engine.fit(fresh(), lambda s: sgd_step(s, fail_at=8), total=10, run=run(tmp_path, "b"), **kw)
    assert io.load_checkpoint(tmp_path / "b.pt")["state"]["step"] == 6
    assert [r["step"] for r in io.read_jsonl(tmp_path / "b.jsonl")] == list(range(1, 8))
    # A fresh state (as in a new process) resumes from step 6 and ends where the uninterrupted run ended.
    resumed = engine.fit(fresh(), sgd_step, total=10, run=run(tmp_path, "b"), **kw)
    assert_same(resumed.state_dict(), ref.state_dict())
    assert_same(io.load_checkpoint(tmp_path / "b.pt"), io.load_checkpoint(tmp_path / "ref.pt"))
    assert untimed(tmp_path / "b.jsonl") == untimed(tmp_path / "ref.jsonl")
    assert not torch.equal(ref.ema[0].weight, ref.model[0].weight)


def test_epoch_unit_counts_epochs_and_records_both_counters(tmp_path):
    ref = engine.fit(fresh(ema=False), epoch_step, total=3, unit="epoch", run=run(tmp_path, "a"), progress=False)
    assert (ref.epoch, ref.step) == (3, 12) and ref.ema is None
    records = io.read_jsonl(tmp_path / "a.jsonl")
    assert [(r["epoch"], r["step"]) for r in records] == [(1, 4), (2, 8), (3, 12)]
    assert all(r["steps_per_s"] > 0 and np.isfinite(r["last_loss"]) for r in records)
    engine.fit(fresh(ema=False), epoch_step, total=1, unit="epoch", run=run(tmp_path, "b"), progress=False)
    resumed = engine.fit(fresh(ema=False), epoch_step, total=3, unit="epoch", run=run(tmp_path, "b"),
                         progress=False)
    assert_same(resumed.state_dict(), ref.state_dict())
    assert untimed(tmp_path / "b.jsonl") == untimed(tmp_path / "a.jsonl")


def test_log_and_checkpoint_cadence(tmp_path, monkeypatch):
    saved, real_save = [], engine.save
    monkeypatch.setattr(engine, "save", lambda state, r: saved.append(state.step) or real_save(state, r))
    engine.fit(fresh(), sgd_step, total=7, run=run(tmp_path, "a"), log_every=3, checkpoint_every=2, progress=False)
    assert saved == [2, 4, 6, 7]
    assert [r["step"] for r in io.read_jsonl(tmp_path / "a.jsonl")] == [3, 6, 7]
    # In memory (no run): nothing written, same weights.
    mem = engine.fit(fresh(), sgd_step, total=7, progress=False)
    assert_same(mem.model.state_dict(), io.load_checkpoint(tmp_path / "a.pt")["state"]["model"])


def test_a_checkpoint_of_another_config_is_not_resumed(tmp_path, caplog):
    engine.fit(fresh(), sgd_step, total=4, run=run(tmp_path, "a"), progress=False)
    other = engine.Run(tmp_path / "a.pt", tmp_path / "a.jsonl", {"lr": 2e-2}, "other-hash")
    with caplog.at_level("WARNING"):
        state = engine.fit(fresh(), sgd_step, total=2, run=other, progress=False)
    assert state.step == 2 and "different config" in caplog.text
    assert io.load_checkpoint(tmp_path / "a.pt")["config_hash"] == "other-hash"
    assert [r["step"] for r in io.read_jsonl(tmp_path / "a.jsonl")] == [1, 2]


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="unit must be one of"):
        engine.fit(fresh(), sgd_step, total=1, unit="batch", progress=False)
    with pytest.raises(RuntimeError, match="must advance state.step by one"):
        engine.fit(fresh(), lambda s: {}, total=1, progress=False)
    state = fresh()
    with pytest.raises(ValueError, match="pass ema_decay"):
        engine.optimizer_step(state, state.model(X).pow(2).mean())
    before = copy.deepcopy(state.model.state_dict())
    with pytest.raises(FloatingPointError, match="non-finite training loss nan at step 1"):
        engine.optimizer_step(state, torch.tensor(float("nan"), requires_grad=True), ema_decay=0.9)
    assert_same(state.model.state_dict(), before)
    assert state.step == 0


def test_update_ema_warms_up_then_holds_its_decay():
    ema, model = nn.Linear(2, 2), nn.Linear(2, 2)
    with torch.no_grad():
        ema.weight.zero_()
        model.weight.fill_(1.0)
    engine.update_ema(ema, model, decay=0.999, step=0)  # d = (1 + 0) / (10 + 0)
    assert torch.allclose(ema.weight, torch.full((2, 2), 0.9))
    engine.update_ema(ema, model, decay=0.5, step=1000)  # d = min(0.5, 1001 / 1010)
    assert torch.allclose(ema.weight, torch.full((2, 2), 0.95))


# --- every resumable trainer on the engine: resumed == uninterrupted, the whole rolling state ----------------

def _score_net(tmp_path, name, steps):
    from score_geometry.train import train_model
    from test_train import CFG, _images

    cfg = copy.deepcopy(CFG)
    cfg["train"]["steps"] = steps
    train_model(_images(), cfg, checkpoint_path=tmp_path / f"{name}.pt", metrics_path=tmp_path / f"{name}.jsonl",
                progress=False)


def _toy(tmp_path, name, steps):
    from score_geometry.toy import fit_toy_model
    from test_toy import SDE, small_toy

    fit_toy_model(small_toy(steps=steps), SDE, checkpoint_path=tmp_path / f"{name}.pt",
                  metrics_path=tmp_path / f"{name}.jsonl", progress=False)


def _vae(tmp_path, name, epochs):
    from score_geometry.vae import train_vae
    from test_vae import _cfg, _images

    labels = np.arange(20) % 3
    cfg = {**_cfg(epochs=epochs, gamma="closed_form"), "t": 0.3}
    train_vae(_images(96), cfg, checkpoint_path=tmp_path / f"{name}.pt",
              metrics_path=tmp_path / f"{name}.jsonl", heldout=(_images(20, seed=1), labels), progress=False)


@pytest.mark.parametrize("trainer, half, full", [(_score_net, 6, 12), (_toy, 10, 20), (_vae, 1, 3)],
                         ids=["score_net", "toy_mlp", "vae"])
def test_every_trainer_resumes_to_the_uninterrupted_state(tmp_path, trainer, half, full):
    trainer(tmp_path, "ref", full)
    trainer(tmp_path, "b", half)
    trainer(tmp_path, "b", full)
    a, b = io.load_checkpoint(tmp_path / "ref.pt"), io.load_checkpoint(tmp_path / "b.pt")
    assert {"model", "optimizer", "generator", "torch_rng", "step"} <= a["state"].keys()
    assert_same(b, a)  # model, EMA, optimiser, generator, torch RNG, counters, config and its hash
    assert untimed(tmp_path / "b.jsonl") == untimed(tmp_path / "ref.jsonl")


@pytest.mark.parametrize("trainer, low, high", [(_score_net, 6, 12), (_toy, 10, 20), (_vae, 1, 3)],
                         ids=["score_net", "toy_mlp", "vae"])
def test_a_lowered_budget_after_a_finished_run_trains_exactly_that_budget(tmp_path, trainer, low, high):
    """A rolling state past the requested total is never resumed: lowering train.steps (or toy.train.steps,
    vae.epochs) after a finished run yields the model of exactly the lower budget, not the longer-trained one."""
    trainer(tmp_path, "ref", low)
    trainer(tmp_path, "b", high)
    trainer(tmp_path, "b", low)  # its rolling state is at `high`
    a, b = io.load_checkpoint(tmp_path / "ref.pt"), io.load_checkpoint(tmp_path / "b.pt")
    assert_same(b, a)
    assert untimed(tmp_path / "b.jsonl") == untimed(tmp_path / "ref.jsonl")


def test_a_state_past_the_total_is_ignored_with_a_warning(tmp_path, caplog):
    run = engine.Run(tmp_path / "s.pt", tmp_path / "m.jsonl", {"a": 1}, "h")
    engine.fit(fresh(), sgd_step, total=8, run=run, progress=False)
    with caplog.at_level("WARNING"):
        state = engine.fit(fresh(), sgd_step, total=5, run=run, progress=False)
    assert state.step == 5 and "past the requested 5" in caplog.text
    assert max(r["step"] for r in io.read_jsonl(run.metrics_path)) == 5


def test_the_training_stages_remove_their_resume_state_once_trained(tmp_path):
    """So a rerun of the rule (--forcerun, a changed budget) trains anew instead of re-emitting the old model."""
    from score_geometry.datasets import Dataset
    from score_geometry.stages import finish_training, train_model
    from test_train import CFG

    (tmp_path / "w" / "clean").mkdir(parents=True)
    (tmp_path / "w" / "clean" / "train_state.pt").write_bytes(b"x")
    (tmp_path / "w" / "metrics.jsonl").write_text("")
    finish_training(tmp_path / "w")
    assert not (tmp_path / "w" / "clean" / "train_state.pt").exists() and (tmp_path / "w" / "metrics.jsonl").exists()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(32, 28, 28), dtype=np.uint8)
    ds = Dataset(name="x", train_images=images, train_labels=np.zeros(32, dtype=np.int64),
                 heldout_images=images[:4], heldout_labels=np.zeros(4, dtype=np.int64))
    cfg = copy.deepcopy(CFG)
    cfg["train"]["steps"] = 3
    cfg["model"]["score_model"] = "unet"
    checkpoint, options, metrics = train_model(ds, cfg, workdir=tmp_path / "run", device="cpu", threads=1)
    assert options["final_step"] == 3 and metrics.exists()
    assert not (tmp_path / "run" / "train_state.pt").exists()
