"""The Appendix B VAE: its local-dimension count on data of known dimension, exact resume, the output table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from score_geometry import io
from score_geometry import vae as V
from test_estimators import linear_points

SDE = {"beta_min": 0.1, "beta_max": 20.0}


def _cfg(**vae) -> dict:
    base = {"arch": "conv", "latent_dim": 8, "width": 4, "epochs": 4, "batch_size": 32, "lr": 1e-3,
            "checkpoint_every": 1, "threshold": 0.5}
    return {"seed": 0, "sde": SDE, "t": None, "data": None, "vae": {**base, **vae}}


def test_vae_count_recovers_k_on_linear_data(tmp_path):
    """k = 5 Gaussian on a linear subspace of R^784 (noise 1e-3): an MLP VAE with a learned gamma drives the
    posterior variance of exactly k latent dims to ~1e-3; the unused dims drift back towards the prior's 1 only
    slowly (after 40-150 epochs many still sit at 0.2-0.6, so the paper's 0.5 threshold counts a few of them;
    see docs/estimators.md). The count at threshold 0.1 recovers k for (almost) every point."""
    k = 5
    X = torch.tensor(linear_points(k, 2100, seed=k), dtype=torch.float32)
    cfg = _cfg(arch="mlp", latent_dim=20, width=64, epochs=60, batch_size=100, lr=1e-2, checkpoint_every=60)
    state = V.train_vae(X[100:], cfg, checkpoint_path=tmp_path / "c.pt", metrics_path=tmp_path / "m.jsonl")
    dims = V.vae_local_dims(state.model, X[:100], threshold=0.1)
    assert np.mean(dims == k) >= 0.95, np.bincount(dims)
    assert (V.vae_local_dims(state.model, X[:100], threshold=0.5) >= k).all()
    var = np.median(V.posterior_variances(state.model, X[:100]), axis=0)
    assert np.sum(var < 0.01) == k and np.sum(var > 0.1) == 20 - k  # sharply separated


def test_resume_is_bit_identical(tmp_path):
    """Stopping after 2 of 4 epochs and rerunning with the same config ends with the same weights."""
    x = torch.rand(96, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    full = V.train_vae(x, _cfg(), checkpoint_path=tmp_path / "a.pt", metrics_path=tmp_path / "a.jsonl")
    V.train_vae(x, _cfg(epochs=2), checkpoint_path=tmp_path / "b.pt", metrics_path=tmp_path / "b.jsonl")
    resumed = V.train_vae(x, _cfg(), checkpoint_path=tmp_path / "b.pt", metrics_path=tmp_path / "b.jsonl")
    assert resumed.epoch == 4 and resumed.step == full.step
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert [r["loss"] for r in io.read_jsonl(tmp_path / "a.jsonl")] == [r["loss"] for r in io.read_jsonl(tmp_path / "b.jsonl")]
    # A checkpoint from another config is ignored (fresh start, not a silent mix).
    other = V.train_vae(x, _cfg(lr=2e-3, epochs=1), checkpoint_path=tmp_path / "b.pt", metrics_path=tmp_path / "c.jsonl")
    assert other.epoch == 1


def test_noisy_training_and_table(tmp_path):
    x = torch.rand(96, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ckpts = {}
    for t in (None, 0.3):
        cfg = {**_cfg(epochs=1), "t": t}
        ck, options = V.fit_vae(x, cfg, checkpoint_path=tmp_path / f"{t}.pt", metrics_path=tmp_path / f"{t}.jsonl")
        assert options["final_epoch"] == 1 and options["t"] == t
        ckpts[V.condition_name(t)] = ck
    assert list(ckpts) == ["clean", "t=0.3"]
    labels = np.arange(6) % 3
    table = V.local_dims_table(ckpts, {"heldout": (x[:6], labels), "samples": (x[6:10], labels[:4])},
                               threshold=0.5, seed=0)
    assert len(table) == 6 + 4 + 6  # the noisy VAE sees held-out points only
    assert set(table["condition"]) == {"clean", "t=0.3"} and table["t"].isna().sum() == 10
    assert table["local_dim"].between(0, 8).all()
    from score_geometry.baselines import clean_heldout_vae

    base = clean_heldout_vae(table)
    assert len(base) == 6 and "local_dim" in base


def test_bad_arguments():
    with pytest.raises(ValueError, match="vae.arch must be one of"):
        V.build_vae({"arch": "gan", "latent_dim": 2, "width": 2})
    with pytest.raises(ValueError, match="needs images \\(C, H, W\\)"):
        V.build_vae({"arch": "conv", "latent_dim": 2, "width": 2}, (784,))
    with pytest.raises(ValueError, match="multiples of 4"):
        V.build_vae({"arch": "conv", "latent_dim": 2, "width": 2}, (3, 18, 18))
    with pytest.raises(ValueError, match="threshold must lie in"):
        V.vae_local_dims(V.build_vae({"arch": "mlp", "latent_dim": 2, "width": 2}, (4,)), torch.zeros(3, 4), threshold=1.5)


@pytest.mark.slow
def test_vae_and_estimator_rules_end_to_end(tiny_run):
    """The tiny preset through train_vae, vae_local_dims, estimate_dims, compare_estimators, plot_estimators (all in
    the default target, so the session's shared tiny run has built them)."""
    import pandas as pd

    from conftest import run_snakemake

    workflow_dir = tiny_run
    targets = ["results/tiny/estimators/comparison.csv", "results/tiny/figures/estimators.png"]
    assert all((workflow_dir / target).exists() for target in targets)
    out = workflow_dir / "results" / "tiny"
    vae = pd.read_parquet(out / "vae" / "local_dims.parquet")
    assert set(vae["condition"]) == {"clean", "t=0.3"}
    assert set(vae["dataset"]) == {"heldout", "samples"} and vae["local_dim"].between(0, 8).all()
    estimates = pd.read_parquet(out / "estimators" / "estimates.parquet")
    assert set(estimates["estimator"]) == {"mle", "twonn", "lpca", "normal_bundle", "flipd"}
    assert (estimates["estimator"] == "flipd").sum() == 4 and estimates["local_dim"].notna().all()
    table = pd.read_csv(out / "estimators" / "comparison.csv")
    assert table["estimator"].iloc[0] == "paper_vae" and "score_model_rt" in set(table["estimator"])
    assert "± " in (out / "estimators" / "comparison.md").read_text()
    assert (out / "figures" / "estimators.pdf").stat().st_size > 1000
    for rule in ("train_vae", "vae_local_dims", "estimate_dims"):
        assert (out / "benchmarks" / f"{rule}.tsv").exists()
        assert (workflow_dir / "logs" / rule / "tiny.log").exists()
    again = run_snakemake(workflow_dir, *targets, "-n", "--cores", "2", "--configfile", "presets/tiny.yaml")
    assert "Nothing to be done" in again.stdout + again.stderr


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_closed_form_gamma_is_the_batch_optimum(tmp_path):
    """vae.gamma closed_form: every step sets gamma = sqrt(per-pixel MSE of the batch) outside the graph, so
    log gamma takes no gradient and the optimiser never sees it; the recorded gamma is the last batch's."""
    x = _images(96)
    model = V.build_vae({**_cfg()["vae"], "gamma": "closed_form"})
    parts = model.negative_elbo(x[:32], generator=torch.Generator().manual_seed(0))
    assert model.gamma.item() == pytest.approx(parts["mse"].item() ** 0.5, rel=1e-5)
    assert not model.log_gamma.requires_grad
    cfg = _cfg(gamma="closed_form", epochs=2)
    state = V.train_vae(x, cfg, checkpoint_path=tmp_path / "c.pt", metrics_path=tmp_path / "m.jsonl")
    assert all(p is not state.model.log_gamma for g in state.optimizer.param_groups for p in g["params"])
    for rec in io.read_jsonl(tmp_path / "m.jsonl"):  # the last batch's MSE is near the epoch mean
        assert abs(np.log(rec["gamma"] / rec["mse"] ** 0.5)) < 0.2
    # gamma at the closed-form optimum minimises the recon term over gamma: nudging it either way costs
    with torch.no_grad():
        g = model.gamma.item()
        D, sq = 784, parts["mse"].item() * 784
        recon = lambda gam: 0.5 * sq / gam**2 + D * np.log(gam)  # noqa: E731
        assert recon(g) < min(recon(1.05 * g), recon(0.95 * g))


def test_gamma_lr_is_its_own_param_group():
    model = V.build_vae({**_cfg()["vae"], "gamma": "learned"})
    opt = V._optimizer(model, {"lr": 1e-3, "gamma_lr": 3e-2})
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 3e-2] and opt.param_groups[1]["params"] == [model.log_gamma]
    opt = V._optimizer(model, {"lr": 1e-3})  # null gamma_lr: one group, log gamma included
    assert len(opt.param_groups) == 1 and any(p is model.log_gamma for p in opt.param_groups[0]["params"])
    with pytest.raises(ValueError, match="vae.gamma must be one of"):
        V.build_vae({**_cfg()["vae"], "gamma": "fixed"})


def test_heldout_metrics_are_recorded_and_resume_stays_bit_identical(tmp_path):
    """Per-epoch held-out metrics (sqrt(MSE), the count's mean, std and per-class means) draw from their own
    generator: training with them equals training without, and a resumed run records the same values."""
    x, held = _images(96), _images(20, seed=1)
    labels = np.arange(20) % 3
    kw = {"heldout": (held, labels)}
    full = V.train_vae(x, _cfg(), checkpoint_path=tmp_path / "a.pt", metrics_path=tmp_path / "a.jsonl", **kw)
    bare = V.train_vae(x, _cfg(), checkpoint_path=tmp_path / "n.pt", metrics_path=tmp_path / "n.jsonl")
    for a, b in zip(full.model.state_dict().values(), bare.model.state_dict().values()):
        assert torch.equal(a, b)
    V.train_vae(x, _cfg(epochs=2), checkpoint_path=tmp_path / "b.pt", metrics_path=tmp_path / "b.jsonl", **kw)
    V.train_vae(x, _cfg(), checkpoint_path=tmp_path / "b.pt", metrics_path=tmp_path / "b.jsonl", **kw)
    a, b = io.read_jsonl(tmp_path / "a.jsonl"), io.read_jsonl(tmp_path / "b.jsonl")
    keys = ("heldout_mse", "heldout_active_dims", "heldout_active_dims_std", "heldout_active_dims_by_label")
    assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]
    rec = a[-1]
    assert set(rec["heldout_active_dims_by_label"]) == {"0", "1", "2"} and 0 <= rec["heldout_active_dims"] <= 8
    counts = V.vae_local_dims(full.model, held)
    assert rec["heldout_active_dims"] == pytest.approx(counts.mean())
    assert rec["heldout_active_dims_by_label"]["1"] == pytest.approx(counts[labels == 1].mean())
    assert "heldout_mse" not in io.read_jsonl(tmp_path / "n.jsonl")[0]


def test_tables_carry_the_convergence_verdict(tmp_path):
    x, labels = _images(96), np.arange(96) % 4
    ck, options = V.fit_vae(x, _cfg(epochs=1), checkpoint_path=tmp_path / "c.pt", metrics_path=tmp_path / "m.jsonl",
                            heldout=(x[:12], labels[:12]))
    assert options["n_train"] == 96 and ck["n_train"] == 96
    steady = [{"gamma": 0.1, "mse": 0.01, "heldout_active_dims": 5.0} for _ in range(12)]
    table = V.local_dims_table({"clean": ck, "again": ck}, {"heldout": (x[:12], labels[:12])}, threshold=0.5, seed=0,
                               metrics={"clean": io.read_jsonl(tmp_path / "m.jsonl"), "again": steady})
    verdicts = table.groupby("condition")["converged"].agg(["all", "any"])
    assert not verdicts.loc["clean", "any"] and verdicts.loc["again", "all"]  # one epoch proves nothing
    assert (table["epochs"] == 1).all() and (table["trained_on"] == "data, 96 images, 1 epochs").all()
    var = V.posterior_variance_table({"clean": ck}, x[:12], labels[:12], seed=0, per_class=2)
    assert len(var) == 4 * 2 * 8 and set(var["label"]) == {0, 1, 2, 3} and (var["variance"] > 0).all()
    dims = V.vae_local_dims(V.load_vae(ck), x[:12])
    per_point = var.assign(below=var["variance"] < 0.5).groupby("point")["below"].sum()
    assert (per_point.to_numpy() == dims[per_point.index.to_numpy()]).all()


def test_figures_draw_only_a_converged_vae():
    """Fig. 3's overlay and the estimators figure drop an unconverged VAE (with a note); the convergence figure
    has its four panels and names the verdict of each VAE."""
    import pandas as pd

    from score_geometry.plots import fig3_local_dims, plt
    from score_geometry.plots.baselines import estimators_figure, vae_convergence_figure

    diagnostics = pd.DataFrame({"t": np.repeat([0.01, 0.3], 10), "local_dim": np.arange(20.0),
                                "image": np.arange(20) % 10, "label": np.arange(20) % 10})
    base = pd.DataFrame({"local_dim": [3.0, 4.0, 5.0], "converged": True,
                         "trained_on": "mnist5k, 4,500 images, 20 epochs"})
    ax = fig3_local_dims(diagnostics, baseline=base, baseline_label="VAE").axes[0]
    assert "4,500 images, 20 epochs" in ax.get_legend().get_texts()[0].get_text()
    ax = fig3_local_dims(diagnostics, baseline=base.assign(converged=False), baseline_label="VAE").axes[0]
    assert ax.get_legend() is None and any("not converged, not drawn" in t.get_text() for t in ax.texts)
    plt.close("all")

    rows = [{"estimator": "vae", "dataset": "heldout", "condition": c, "point": i, "label": i % 10, "t": t,
             "local_dim": 7.0, "converged": ok, "epochs": 20, "trained_on": f"mnist5k, {c}"}
            for c, t, ok in (("clean", np.nan, True), ("t=0.3", 0.3, False)) for i in range(20)]
    other = pd.DataFrame([{"estimator": "mle", "dataset": "heldout", "condition": "clean", "point": i,
                           "label": i % 10, "t": np.nan, "local_dim": 9.0} for i in range(20)])
    fig = estimators_figure(pd.DataFrame(rows), other, diagnostics)
    labels = [label.get_text() for label in fig.axes[1].get_yticklabels()]
    assert "VAE" in labels and not any("0.3" in label and "VAE" in label for label in labels)
    assert any("not converged, not drawn" in t.get_text() and "t=0.3" in t.get_text() for t in fig.axes[0].texts)
    plt.close("all")

    def records(n, dims):
        return [{"epoch": k + 1, "gamma": 0.1, "mse": 0.01, "heldout_mse": 0.012, "heldout_active_dims": dims,
                 "heldout_active_dims_std": 1.0, "heldout_active_dims_by_label": {"0": dims, "1": dims - 2}}
                for k in range(n)]

    var = pd.DataFrame({"condition": "clean", "label": np.arange(200) % 2, "variance": np.geomspace(1e-3, 1, 200)})
    fig = vae_convergence_figure({"clean": records(12, 9.0), "t=0.3": records(3, 5.0)}, var, threshold=0.5,
                                 trained_on={"clean": "mnist5k, 4,500 images, 12 epochs"})
    assert len(fig.axes) == 4
    names = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert names == ["clean (converged)", "t=0.3 (NOT converged)"]
    assert len(fig.axes[2].get_lines()) == 2 and fig.axes[3].get_xscale() == "log"
    plt.close("all")


def test_conv_vae_serves_rgb_images():
    vae = V.build_vae({"arch": "conv", "latent_dim": 5, "width": 4}, (3, 16, 16)).eval()
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    mean, logvar = vae.encoder(x)
    assert mean.shape == (4, 5) and logvar.shape == (4, 5)
    assert vae.decoder(mean).shape == (4, 3, 16, 16)
