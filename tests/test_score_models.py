"""The score-model seam: every kind through `load_score_model`, external models in the pipeline (no training)."""

from __future__ import annotations

import logging
import math
import shutil
import textwrap

import numpy as np
import pytest
import torch
import yaml

from conftest import run_snakemake
from score_geometry.models import pca_oracle_checkpoint, score_fn_from_checkpoint
from score_geometry.networks import build_network
from score_geometry.score import make_score_fn
from score_geometry.score_models import (ModelLoadError, ScoreModel, check_score_model, diffusers_score,
                                         load_external, load_score_model, timestep_for)
from score_geometry.sde import VPSDE

SDE = {"beta_min": 0.1, "beta_max": 20.0}
TINY_UNET = {"architecture": "unet", "channels": [8, 8, 8], "num_res_blocks": 1, "attention": False,
             "dropout": 0.0, "groups": 4, "parameterisation": "eps"}


def _cfg(**model):
    return {"sde": dict(SDE), "model": {**TINY_UNET, **model}}


def _x_t(n=2, shape=(1, 28, 28)):
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(0)), torch.tensor([0.01, 0.3][:n])


class EpsNet(torch.nn.Module):
    """A network the tests can write down: eps_hat(x, t) = tanh(x) * (1 + t)."""

    def forward(self, x, t):
        return torch.tanh(x) * (1 + t.view(-1, 1, 1, 1))


def test_trained_network_reference_is_its_ema_network_as_score():
    torch.manual_seed(0)
    net = build_network(TINY_UNET)
    ref = {"kind": "unet", "config": _cfg(), "step": 3, "state": {"model": net.state_dict(), "ema": net.state_dict()}}
    model = load_score_model(ref)
    assert isinstance(model, ScoreModel) and model.image_shape == (1, 28, 28) and model.parameterisation == "eps"
    x, t = _x_t()
    expected = make_score_fn(net.eval(), VPSDE(**SDE), "eps")(x, t)
    torch.testing.assert_close(model(x, t), expected, rtol=0, atol=0)
    torch.testing.assert_close(score_fn_from_checkpoint(ref)(x, t), expected, rtol=0, atol=0)


def test_oracle_reference_keeps_its_image_shape():
    images = torch.randn(50, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    ref = pca_oracle_checkpoint(images, {"sde": SDE, "model": {"oracle_rank": 4}})
    model = load_score_model(ref)
    assert model.image_shape == (1, 28, 28) and model.kind == "gaussian_oracle" and model.parameterisation is None


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(ValueError, match="gaussian_oracle"):
        load_score_model({"kind": "nope", "config": _cfg()})


def _write_module(tmp_path, body: str) -> str:
    (tmp_path / "user_model.py").write_text(textwrap.dedent(body))
    return str(tmp_path / "user_model.py")


def test_callable_from_a_file_returning_a_network_is_read_per_parameterisation(tmp_path):
    path = _write_module(tmp_path, """
        import torch
        class EpsNet(torch.nn.Module):
            def forward(self, x, t):
                return torch.tanh(x) * (1 + t.view(-1, 1, 1, 1))
        def build(scale=1.0):
            return EpsNet()
        """)
    x, t = _x_t()
    sde = VPSDE(**SDE)
    for par, expected in (("eps", -EpsNet()(x, t) / sde.sigma(t).view(-1, 1, 1, 1)),
                          ("x0", (sde.alpha(t).view(-1, 1, 1, 1) * EpsNet()(x, t) - x) / sde.sigma(t).view(-1, 1, 1, 1) ** 2)):
        ref = {"kind": "callable", "spec": {"path": f"{path}:build", "kwargs": {"scale": 2.0}},
               "config": _cfg(parameterisation=par), "image_shape": [1, 28, 28], "step": 0}
        model = load_score_model(ref)
        torch.testing.assert_close(model(x, t), expected)
        assert model.parameterisation == par


def test_callable_returning_a_score_model_is_used_as_is(tmp_path):
    path = _write_module(tmp_path, """
        from score_geometry import ScoreModel, VPSDE
        def build():
            return ScoreModel(lambda x, t: -x, (1, 28, 28), VPSDE(), "mine", "score")
        """)
    model = load_score_model({"kind": "callable", "spec": {"path": f"{path}:build"}, "config": _cfg()})
    x, t = _x_t()
    assert model.kind == "mine"
    torch.testing.assert_close(model(x, t), -x)


def test_callable_errors_name_the_problem(tmp_path):
    path = _write_module(tmp_path, "def build():\n    return 3\n")
    with pytest.raises(ModelLoadError, match=r"callable model .*user_model.py:build: it returned int; expected .*"
                                             r"a function returning a ScoreModel or a net\(x, t\)"):
        load_score_model({"kind": "callable", "spec": {"path": f"{path}:build"}, "config": _cfg()})
    with pytest.raises(ValueError, match="no attribute 'other'"):
        load_score_model({"kind": "callable", "spec": {"path": f"{path}:other"}, "config": _cfg()})


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")  # TorchScript is deprecated in this torch
def test_torchscript_file_equals_the_scripted_network(tmp_path):
    scripted = torch.jit.script(EpsNet())
    scripted.save(str(tmp_path / "net.pt"))
    ref = {"kind": "torchscript", "spec": {"path": str(tmp_path / "net.pt")}, "config": _cfg(),
           "image_shape": [1, 28, 28]}
    x, t = _x_t()
    torch.testing.assert_close(load_score_model(ref)(x, t),
                               -EpsNet()(x, t) / VPSDE(**SDE).sigma(t).view(-1, 1, 1, 1))


def test_exported_program_with_a_dynamic_batch_serves_jacobians(tmp_path):
    from score_geometry import score_jacobian

    x, t = _x_t()
    batch = torch.export.Dim("batch")
    program = torch.export.export(EpsNet(), (x, t), dynamic_shapes={"x": {0: batch}, "t": {0: batch}})
    torch.export.save(program, tmp_path / "net.pt2")
    ref = {"kind": "export", "spec": {"path": str(tmp_path / "net.pt2")}, "config": _cfg(),
           "image_shape": [1, 28, 28]}
    model = load_score_model(ref)
    sigma = VPSDE(**SDE).sigma(t).view(-1, 1, 1, 1)
    torch.testing.assert_close(model(x, t), -EpsNet()(x, t) / sigma)
    # d/dx of -tanh(x)(1 + t)/sigma_t is diagonal: -(1 - tanh^2 x)(1 + t)/sigma_t
    J = score_jacobian(model.score, x[:1], float(t[0]), chunk_size=100, method="retain")[0]
    expected = -(1 - torch.tanh(x[0].flatten()) ** 2) * (1 + t[0]) / sigma[0].flatten()
    torch.testing.assert_close(J, torch.diag(expected))


def test_a_reference_that_is_not_one_says_what_it_needs():
    with pytest.raises(ValueError, match=r"needs 'config'.*keys \['kind', 'spec'\].*load_external\('diffusers', path"):
        load_score_model({"kind": "diffusers", "spec": {"path": "ddpm-mnist"}})
    with pytest.raises(ValueError, match="kind torchscript needs spec.path"):
        load_score_model({"kind": "torchscript", "config": _cfg()})
    with pytest.raises(TypeError, match="a model reference is a dict .*got Tensor"):
        load_score_model(torch.zeros(3))


def test_load_external_is_the_public_loader_and_checks_what_it_loads(tmp_path):
    import score_geometry

    assert "load_external" in score_geometry.__all__ and score_geometry.load_external is load_external
    path = _write_module(tmp_path, """
        import torch
        class EpsNet(torch.nn.Module):
            def forward(self, x, t):
                return torch.tanh(x) * (1 + t.view(-1, 1, 1, 1))
        def build(scale):
            return EpsNet()
        def nan_band():
            return lambda x, t: torch.where(((t > 0.05) & (t < 0.2)).view(-1, 1, 1, 1), x * float("nan"), x)
        """)
    model = load_external("callable", f"{path}:build", kwargs={"scale": 1}, beta_max=10.0, image_shape=(1, 4, 4))
    x, t = _x_t(shape=(1, 4, 4))
    assert model.image_shape == (1, 4, 4) and model.kind == "callable" and model.sde.beta_max == 10.0
    torch.testing.assert_close(model(x, t), -EpsNet()(x, t) / VPSDE(0.1, 10.0).sigma(t).view(-1, 1, 1, 1))
    load_external("callable", f"{path}:nan_band", image_shape=(1, 4, 4))  # finite at the default check times
    with pytest.raises(ModelLoadError, match=r"callable model .*:nan_band: the score model returned non-finite "
                                             r"values at t = 0.1; expected"):
        load_external("callable", f"{path}:nan_band", image_shape=(1, 4, 4), times=(0.01, 0.1))


@pytest.mark.parametrize(("source", "content", "needle"), [
    ("torchscript", None, "no such file"),
    ("torchscript", "text", r"not a torch.jit.save file \(not a zip archive\); expected a file saved with "
                            r"torch.jit.save"),
    ("export", "text", r"not a torch.export.save program \(.pt2\); expected a program saved with torch.export.save"),
])
def test_file_loaders_name_the_source_the_file_and_the_format(tmp_path, source, content, needle):
    if content is not None:
        (tmp_path / "model.bin").write_text(content)
    with pytest.raises(ModelLoadError, match=rf"{source} model {tmp_path / 'model.bin'}: {needle}"):
        load_external(source, tmp_path / "model.bin", image_shape=(1, 28, 28))


def test_check_score_model_rejects_a_score_that_is_not_a_tensor():
    with pytest.raises(ValueError, match="returned tuple at t = 0.01: expected a tensor of shape"):
        check_score_model(ScoreModel(lambda x, t: (x, t), (1, 2, 2), VPSDE(), "mine"), (1, 2, 2))
    with pytest.raises(ValueError, match=r"failed on inputs \(2, 1, 2, 2\) at t = 0.01: RuntimeError: broken"):
        check_score_model(ScoreModel(_broken, (1, 2, 2), VPSDE(), "mine"), (1, 2, 2))


def _broken(x, t):
    raise RuntimeError("broken")


def test_check_score_model_rejects_another_image_shape():
    model = ScoreModel(lambda x, t: -x, (3, 32, 32), VPSDE(), "mine")
    with pytest.raises(ValueError, match=r"\(3, 32, 32\) differs from the data's \(1, 28, 28\)"):
        check_score_model(model, (1, 28, 28))
    bad = ScoreModel(lambda x, t: x.flatten(1), (1, 28, 28), VPSDE(), "mine")
    with pytest.raises(ValueError, match="returned shape"):
        check_score_model(bad, (1, 28, 28))
    rms = check_score_model(ScoreModel(lambda x, t: -x, (1, 28, 28), VPSDE(), "mine"), (1, 28, 28))
    assert set(rms) == {"score_rms_t=0.01", "score_rms_t=0.3"}


# --- diffusers: the discrete DDPM schedule mapped to the continuous VP-SDE by noise level -------------------

def _linear_log_alpha_bar(n=1000, beta_start=1e-4, beta_end=0.02):
    betas = np.linspace(beta_start, beta_end, n)
    return np.log(np.cumprod(1 - betas))


def test_timestep_matches_noise_level_and_is_about_1000t_minus_1_for_the_linear_ddpm_schedule():
    log_ab = _linear_log_alpha_bar()
    sde = VPSDE(**SDE)
    t = torch.tensor([0.01, 0.05, 0.3, 0.6], dtype=torch.float64)
    k = timestep_for(log_ab, -sde.integrated_beta(t))
    # the matched level: interpolated log alpha-bar at k equals log alpha_t^2
    np.testing.assert_allclose(np.interp(k.numpy(), np.arange(1000), log_ab), -sde.integrated_beta(t).numpy(),
                               rtol=1e-6)
    # the continuous limit of this schedule is beta_min = 0.1, beta_max = 20: k ~ 1000 t - 1 (the sum of the
    # betas' squares makes the discrete schedule slightly noisier, more so at large t)
    np.testing.assert_allclose(k.numpy(), 1000 * t.numpy() - 1, atol=0.02 * 1000 * t.numpy().max())
    # clamped to the schedule's range
    assert timestep_for(log_ab, torch.tensor([0.0, -50.0])).tolist() == [0.0, 999.0]


@pytest.mark.parametrize("prediction", ["epsilon", "sample", "v_prediction"])
def test_diffusers_prediction_types_give_the_exact_score_of_a_gaussian(prediction):
    """Data N(0, s^2 I): whatever the network predicts, an exact predictor must give g = -x / (alpha^2 s^2 + sigma^2)."""
    s2, sde, log_ab = 0.3, VPSDE(**SDE), _linear_log_alpha_bar()

    def exact(x, k):  # the network sees only the timestep: recover alpha, sigma from the schedule at k
        ab = torch.as_tensor(np.exp(np.interp(k.double().numpy(), np.arange(1000), log_ab)), dtype=x.dtype)
        a, sg = ab.sqrt().view(-1, 1, 1, 1), (1 - ab).sqrt().view(-1, 1, 1, 1)
        x0_hat = a * s2 / (a**2 * s2 + sg**2) * x  # E[x0 | x_t]
        eps_hat = (x - a * x0_hat) / sg
        return {"epsilon": eps_hat, "sample": x0_hat, "v_prediction": a * eps_hat - sg * x0_hat}[prediction]

    score = diffusers_score(exact, prediction, log_ab, sde)
    x, t = _x_t()
    x, t = x.double(), t.double()
    expected = -x / (sde.alpha(t) ** 2 * s2 + sde.sigma(t) ** 2).view(-1, 1, 1, 1)
    torch.testing.assert_close(score(x, t), expected, rtol=1e-6, atol=1e-9)


def save_tiny_diffusers_model(directory, prediction_type="epsilon"):
    """A small UNet2DModel on 1x28x28 images and a linear DDPM scheduler, saved as a pipeline directory."""
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=28, in_channels=1, out_channels=1, layers_per_block=1,
                                 block_out_channels=(8, 16), norm_num_groups=4,
                                 down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D"))
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear",
                                        prediction_type=prediction_type)
    unet.save_pretrained(directory / "unet")
    scheduler.save_pretrained(directory / "scheduler")
    return unet


def test_diffusers_directory_loads_as_its_unet_at_the_matched_timestep(tmp_path):
    unet = save_tiny_diffusers_model(tmp_path)
    ref = {"kind": "diffusers", "spec": {"path": str(tmp_path)}, "config": _cfg()}
    model = load_score_model(ref)
    assert model.image_shape == (1, 28, 28) and model.parameterisation == "epsilon"
    x, t = _x_t()
    sde = VPSDE(**SDE)
    from diffusers import DDPMScheduler

    log_ab = np.log(DDPMScheduler.from_pretrained(tmp_path / "scheduler").alphas_cumprod.double().numpy())
    np.testing.assert_allclose(log_ab, _linear_log_alpha_bar(), atol=1e-6)  # the schedule we mean (float32)
    k = timestep_for(log_ab, -sde.integrated_beta(t.double())).float()
    with torch.no_grad():
        expected = -unet.eval()(x, k).sample / sde.sigma(t).view(-1, 1, 1, 1)
    torch.testing.assert_close(model(x, t), expected)


class _Records(logging.Handler):
    """The records a logger (diffusers': it does not propagate) emits while attached."""

    def __init__(self, name: str):
        super().__init__()
        self.records, self.logger = [], logging.getLogger(name)

    def __enter__(self):
        self.logger.addHandler(self)
        return self.records

    def __exit__(self, *exc):
        self.logger.removeHandler(self)

    def emit(self, record):
        self.records.append(record.getMessage())


def test_diffusers_model_loads_without_a_warning(tmp_path):
    """Casting with .to(dtype) makes diffusers warn that modules "should be kept in float32"; the loader loads in
    the dtype instead (and without the low_cpu_mem_usage warning where accelerate is missing)."""
    unet = save_tiny_diffusers_model(tmp_path)
    with _Records("diffusers") as records:
        unet.to(dtype=torch.float32)
    assert any("Casting directly" in r for r in records)  # the control: the warning is seen
    with _Records("diffusers") as records:
        for dtype in (torch.float32, torch.float64):
            model = load_score_model({"kind": "diffusers", "spec": {"path": str(tmp_path)}, "config": _cfg()},
                                     dtype=dtype)
            x, t = _x_t()
            assert model(x.to(dtype), t.to(dtype)).dtype == dtype
    assert records == []


def test_a_unet_only_directory_reads_with_the_stated_default_schedule(tmp_path, caplog):
    save_tiny_diffusers_model(tmp_path / "pipeline")
    shutil.copytree(tmp_path / "pipeline/unet", tmp_path / "unet_only")  # what unet.save_pretrained alone writes
    with caplog.at_level(logging.WARNING, logger="score_geometry.score_models"):
        only = load_external("diffusers", tmp_path / "unet_only")
    assert "has no scheduler" in caplog.text and "default linear DDPM schedule, beta 1e-4 to 0.02 over 1000 steps" \
        in caplog.text
    full = load_external("diffusers", tmp_path / "pipeline")  # linear 1e-4..0.02, 1000 steps, epsilon: the same
    assert only.image_shape == full.image_shape == (1, 28, 28) and only.parameterisation == "epsilon"
    x, t = _x_t()
    torch.testing.assert_close(only(x, t), full(x, t))
    with pytest.raises(ModelLoadError, match=r"differs from the data's \(3, 28, 28\)"):
        load_external("diffusers", tmp_path / "unet_only", image_shape=(3, 28, 28))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"diffusers model .*empty: no UNet2DModel in .*; expected a directory "
                                             r"with unet/ .* and scheduler/"):
        load_external("diffusers", tmp_path / "empty")


# --- the pipeline on external models: training skipped --------------------------------------------------

def _external_run(wd, name, model):
    # two sampled and one held-out image at the five times: what is checked is that each stage takes the model
    cfg = {"run": name, "model": model, "plots": {"vae_baseline": False, "examples": [0, 1]},
           "jacobian": {"shards": 1, "n_images": 2}, "calibration": {"n_images": 1}}
    (wd / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    targets = [f"results/{name}/stats/{f}" for f in ("summary.csv", "calibration_summary.csv")]
    targets += [f"results/{name}/figures/fig2_features.png", f"results/{name}/samples/quality.json"]
    proc = run_snakemake(wd, "--cores", "2", *targets, "--configfile", "presets/tiny.yaml", f"{name}.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("source", ["callable", "diffusers"])
def test_pipeline_runs_on_an_external_model_without_training(tiny_run, source):
    wd = tiny_run  # adds results/tiny_<source>; results/tiny is only read
    if source == "diffusers":
        save_tiny_diffusers_model(wd / "hf_model")
        model = {"source": "diffusers", "path": "hf_model"}
    else:
        _write_module(wd, """
            import torch
            from score_geometry.networks import build_network
            def build(channels):
                torch.manual_seed(0)
                return build_network({"channels": channels, "num_res_blocks": 1, "attention": False,
                                      "dropout": 0.0, "groups": 4})
            """)
        model = {"source": "callable", "path": "user_model.py:build", "kwargs": {"channels": [8, 8, 8]},
                 "parameterisation": "eps"}
    name = f"tiny_{source}"
    console = _external_run(wd, name, model)
    assert "train_model" in console and "train.train_model" not in console
    out = wd / "results" / name
    metrics = [yaml.safe_load(line) for line in (out / "model/metrics.jsonl").read_text().splitlines()]
    assert metrics[0]["source"] == source and all("loss" not in m for m in metrics)  # nothing was trained
    import pandas as pd
    summary = pd.read_csv(out / "stats/calibration_summary.csv")  # an untrained net: ratios may be inf
    assert set(summary["source"]) == {"heldout_noisy", "model_samples"} and len(summary) == 10
    assert summary["local_dim_median"].between(0, 784).all()
    assert (out / "figures/fig2_features.png").stat().st_size > 0
    # replacing the model's file (new content: Snakemake compares checksums, not only times) reruns from the
    # model on; a dry run says so
    target = wd / ("hf_model/unet/config.json" if source == "diffusers" else "user_model.py")
    target.write_text(target.read_text() + "\n")
    proc = run_snakemake(wd, "-n", "--cores", "1", f"results/{name}/stats/summary.csv", "--configfile",
                         "presets/tiny.yaml", f"{name}.yaml")
    assert "train_model" in proc.stdout and "sample_sequences" in proc.stdout, proc.stdout


def test_config_rejects_an_external_source_without_a_valid_path(workflow_dir):
    (workflow_dir / "rgb/unet").mkdir(parents=True)  # a diffusers UNet on 3x16x16 images: not mnist5k's
    (workflow_dir / "rgb/unet/config.json").write_text('{"in_channels": 3, "sample_size": 16}')
    for model, message in (({"source": "torchscript"}, "model.path: required"),
                           ({"source": "torchscript", "path": "missing.pt"}, "model.path='missing.pt': no such file"),
                           ({"source": "callable", "path": "no_colon"}, "expected 'package.module:function'"),
                           ({"source": "diffusers", "path": "rgb"}, "takes images of shape (3, 16, 16)")):
        (workflow_dir / "bad.yaml").write_text(yaml.safe_dump({"model": model}))
        proc = run_snakemake(workflow_dir, "-n", "--cores", "1", "--configfile", "bad.yaml")
        assert proc.returncode != 0 and message in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        assert not (workflow_dir / "results").exists()


def test_public_api_exports_the_seam():
    import score_geometry

    for name in ("ScoreModel", "load_score_model", "load_external", "VPSDE"):
        assert name in score_geometry.__all__ and hasattr(score_geometry, name)
    assert math.isfinite(float(score_geometry.VPSDE().sigma(torch.tensor(0.5))))
