"""The VAE baseline of Appendix B (after Dai & Wipf 2019) and its local dimension: latent dims with posterior variance < 0.5.

Model: prior p(z) = N(0, I) on R^latent_dim; likelihood p(x | z) = N(x; mu_theta(z), gamma^2 I) with a conv
decoder mean and ONE learned scalar gamma; posterior q(z | x) = N(mu_phi(x), diag(v_phi(x))) from a conv encoder.
Conv + batch-norm + ReLU layers in the DCGAN style. With a learned gamma the optimum drives gamma towards the
data's noise level and, in Dai & Wipf's analysis, the posterior variance of exactly the latent dims that the
data manifold needs towards 0 (the others stay at the prior's 1), so counting v_j < threshold estimates the
local dimension of x.

Training is resumable like the score model's (`score_geometry.train`): one `torch.Generator` draws every
random number (epoch permutations, reparameterisation noise, input noise) and its state is checkpointed with
the model and optimiser at epoch boundaries, so on the CPU a killed and resumed run ends bit-identical to an
uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from . import io
from .sde import VPSDE
from .train import resume_from, save_state

log = logging.getLogger(__name__)

ARCHS = ("conv", "mlp")


# --- networks ---------------------------------------------------------------------------------------

class ConvEncoder(nn.Module):
    """x (B, 1, 28, 28) -> posterior mean and log-variance (B, latent_dim) each; widths w, 2w at 14, 7 px."""

    def __init__(self, latent_dim: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),                # 28 -> 14
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width), nn.ReLU(),    # 14 -> 7
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * width * 49, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.head(self.net(x)).chunk(2, dim=1)
        return mean, logvar


class ConvDecoder(nn.Module):
    """z (B, latent_dim) -> likelihood mean (B, 1, 28, 28); transposed convs 7 -> 14 -> 28 px (DCGAN generator)."""

    def __init__(self, latent_dim: int, width: int) -> None:
        super().__init__()
        self.width = width
        self.fc = nn.Sequential(nn.Linear(latent_dim, 2 * width * 49), nn.BatchNorm1d(2 * width * 49), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),  # 7 -> 14
            nn.ConvTranspose2d(width, 1, 4, 2, 1),                                            # 14 -> 28
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(-1, 2 * self.width, 7, 7))


class MLPEncoder(nn.Module):
    """x (B, *S) flattened to (B, D) -> mean, log-variance (B, latent_dim); a small variant for vector data and tests."""

    def __init__(self, data_dim: int, latent_dim: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(data_dim, width), nn.BatchNorm1d(width), nn.ReLU(),
                                 nn.Linear(width, 2 * latent_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.net(x).chunk(2, dim=1)
        return mean, logvar


class MLPDecoder(nn.Module):
    """z (B, latent_dim) -> mean (B, *data_shape)."""

    def __init__(self, data_shape: tuple[int, ...], latent_dim: int, width: int) -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.net = nn.Sequential(nn.Linear(latent_dim, width), nn.BatchNorm1d(width), nn.ReLU(),
                                 nn.Linear(width, math.prod(data_shape)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.data_shape)


class VAE(nn.Module):
    """Gaussian VAE with one learned likelihood std gamma (Dai & Wipf 2019).

    Args:
        encoder: x -> (posterior mean, posterior log-variance), each (B, latent_dim).
        decoder: z -> likelihood mean, shape of x.
        gamma_min: floor on gamma (same units as x, here pixels in [-1, 1]); keeps the loss finite once gamma
            reaches the quantisation noise of 8-bit images (2/255 ~ 0.008), where it would otherwise keep shrinking.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, *, gamma_min: float = 1e-3) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.log_gamma = nn.Parameter(torch.zeros(()))
        self.gamma_min = float(gamma_min)

    @property
    def gamma(self) -> torch.Tensor:
        return self.log_gamma.exp().clamp_min(self.gamma_min)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and variance, (B, latent_dim) each."""
        mean, logvar = self.encoder(x)
        return mean, logvar.exp()

    def negative_elbo(self, x: torch.Tensor, *, generator: torch.Generator,
                      threshold: float = 0.5) -> dict[str, torch.Tensor]:
        """-ELBO per example, averaged over the batch, in nats; also its reconstruction and KL parts, the
        per-pixel MSE and the mean number of latent dims with posterior variance < `threshold` (a progress signal).

        Args:
            x: (B, *S) data.
            generator: draws the reparameterisation noise.
        """
        mean, logvar = self.encoder(x)
        # Reparameterised z ~ q(z | x).
        z = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=generator, device=mean.device)
        x_hat = self.decoder(z)
        D = x[0].numel()
        gamma = self.gamma
        sq = (x - x_hat).pow(2).flatten(1).sum(1)
        recon = 0.5 * sq / gamma**2 + D * torch.log(gamma) + 0.5 * D * math.log(2 * math.pi)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1).sum(1)
        active = (logvar.detach().exp() < threshold).sum(1).double()
        return {"loss": (recon + kl).mean(), "recon": recon.mean(), "kl": kl.mean(), "mse": sq.mean() / D,
                "active_dims": active.mean()}


def build_vae(vae_cfg: Mapping[str, Any], data_shape: tuple[int, ...] = (1, 28, 28)) -> VAE:
    """The VAE of a ``vae:`` config section (``arch``, ``latent_dim``, ``width``) for data of `data_shape`."""
    arch, latent, width = vae_cfg["arch"], vae_cfg["latent_dim"], vae_cfg["width"]
    if arch == "conv":
        if tuple(data_shape) != (1, 28, 28):
            raise ValueError(f"vae.arch 'conv' needs (1, 28, 28) images, got data_shape {tuple(data_shape)}; "
                             "use vae.arch 'mlp' for other shapes")
        return VAE(ConvEncoder(latent, width), ConvDecoder(latent, width))
    if arch == "mlp":
        return VAE(MLPEncoder(math.prod(data_shape), latent, width), MLPDecoder(tuple(data_shape), latent, width))
    raise ValueError(f"vae.arch must be one of {ARCHS}, got {arch!r}")


# --- training ---------------------------------------------------------------------------------------

@dataclass
class VAEState:
    """Everything that changes during training; `epoch` counts completed epochs."""

    model: VAE
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    epoch: int = 0
    step: int = 0

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
                "epoch": self.epoch, "step": self.step}

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        self.model.load_state_dict(d["model"])
        self.optimizer.load_state_dict(d["optimizer"])
        self.generator.set_state(d["generator"])
        torch.set_rng_state(d["torch_rng"])
        self.epoch, self.step = int(d["epoch"]), int(d["step"])


def noise_scales(t: float | None, sde: VPSDE) -> tuple[float, float]:
    """(alpha_t, sigma_t) of the VP-SDE at `t`; (1, 0) for clean data (t None)."""
    if t is None:
        return 1.0, 0.0
    tt = torch.tensor(float(t), dtype=torch.float64)
    return float(sde.alpha(tt)), float(sde.sigma(tt))


def resume_hash(cfg: Mapping[str, Any]) -> str:
    """Hash of what a resumed run must share with its checkpoint (not the epoch count or logging cadence)."""
    vae = {k: v for k, v in cfg["vae"].items() if k not in ("epochs", "checkpoint_every", "threshold", "times")}
    from .datasets import data_identity

    data = data_identity(cfg["data"]) if cfg.get("data") is not None else None
    return io.config_hash({"seed": cfg["seed"], "vae": vae, "sde": cfg["sde"], "t": cfg["t"], "data": data})


def train_vae(data: torch.Tensor, cfg: Mapping[str, Any], *, checkpoint_path: str | Path,
              metrics_path: str | Path, device: torch.device | str = "cpu") -> VAEState:
    """Train (or resume) the VAE to ``cfg["vae"]["epochs"]`` epochs on `data`, noised at ``cfg["t"]`` if set.

    Args:
        data: (N, *S) training data (images in [-1, 1]: (N, 1, 28, 28)).
        cfg: ``seed``, ``sde``, ``t`` (None = clean, else x_t = alpha_t x + sigma_t eps with fresh eps every
            batch) and ``vae`` (arch, latent_dim, width, epochs, batch_size, lr, checkpoint_every). Its hash is
            stored in the checkpoint; one made with a different config is never resumed from.
        checkpoint_path: rolling training state, rewritten atomically every ``checkpoint_every`` epochs and at the end.
        metrics_path: JSONL, one record per epoch (epoch, step, loss, recon, kl, mse, gamma, seconds).

    Returns:
        The final VAEState.

    Raises:
        FloatingPointError: on a non-finite loss; the last good checkpoint is kept.
    """
    vcfg, sde = cfg["vae"], VPSDE(**cfg["sde"])
    alpha, sigma = noise_scales(cfg["t"], sde)
    if data.shape[0] < 2 * vcfg["batch_size"]:
        raise ValueError(f"vae.batch_size={vcfg['batch_size']} needs at least {2 * vcfg['batch_size']} training "
                         f"points, got {data.shape[0]}; lower vae.batch_size")
    torch.manual_seed(cfg["seed"])
    model = build_vae(vcfg, tuple(data.shape[1:])).to(device)
    state = VAEState(model, torch.optim.Adam(model.parameters(), lr=vcfg["lr"]),
                     torch.Generator(device=device).manual_seed(cfg["seed"]))
    chash = resume_hash(cfg)
    checkpoint_path = Path(checkpoint_path)
    resume_from(checkpoint_path, state, chash, metrics_path=metrics_path, device=device)

    def save() -> None:
        save_state(checkpoint_path, state, cfg, chash)

    data = data.to(device)
    n, bs = data.shape[0], vcfg["batch_size"]
    while state.epoch < vcfg["epochs"]:
        t0, sums, nb = time.perf_counter(), {}, 0
        state.model.train()
        perm = torch.randperm(n, generator=state.generator, device=state.generator.device).to(data.device)
        # Drop the last partial batch: batch-norm needs more than one example.
        for b0 in range(0, n - bs + 1, bs):
            x = data[perm[b0:b0 + bs]]
            if sigma > 0:
                # Noisy data at the paper's sigma_t: x_t = alpha_t x + sigma_t eps, fresh eps every batch.
                x = alpha * x + sigma * torch.randn(x.shape, generator=state.generator, device=x.device)
            parts = state.model.negative_elbo(x, generator=state.generator, threshold=vcfg["threshold"])
            loss = parts["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite VAE loss {loss.item()} at epoch {state.epoch + 1}, step "
                                         f"{state.step + 1}; the last good checkpoint is kept at {checkpoint_path}")
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()
            state.step += 1
            nb += 1
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v.item()
        state.epoch += 1
        rec = {"epoch": state.epoch, "step": state.step, **{k: v / nb for k, v in sums.items()},
               "gamma": state.model.gamma.item(), "seconds": time.perf_counter() - t0}
        io.append_jsonl(metrics_path, rec)
        log.info("epoch %d: loss %.1f, kl %.1f, gamma %.4f, active dims %.1f", state.epoch, rec["loss"], rec["kl"],
                 rec["gamma"], rec["active_dims"])
        if state.epoch % vcfg["checkpoint_every"] == 0:
            save()
    save()
    return state


def final_checkpoint(state: VAEState, cfg: Mapping[str, Any], data_shape: tuple[int, ...]) -> dict[str, Any]:
    """What evaluation needs: weights, data shape, epoch/step and the resolved config."""
    return {"kind": "vae", "state": state.model.state_dict(), "data_shape": list(data_shape),
            "epoch": state.epoch, "step": state.step, "config": dict(cfg)}


def load_vae(checkpoint: Mapping[str, Any], *, device: torch.device | str = "cpu") -> VAE:
    """Rebuild the VAE (eval mode, no grads) from `final_checkpoint`'s dict."""
    model = build_vae(checkpoint["config"]["vae"], tuple(checkpoint["data_shape"])).to(device)
    model.load_state_dict(checkpoint["state"])
    return model.eval().requires_grad_(False)


def fit_vae(data: torch.Tensor, cfg: Mapping[str, Any], *, checkpoint_path: str | Path, metrics_path: str | Path,
            device: torch.device | str = "cpu", threads: int = 1) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the VAE (resumably); return the final checkpoint and the options dict to dump beside it."""
    state = train_vae(data, cfg, checkpoint_path=checkpoint_path, metrics_path=metrics_path, device=device)
    options = {**dict(cfg), "n_parameters": sum(p.numel() for p in state.model.parameters()),
               "final_epoch": state.epoch, "final_step": state.step, "final_gamma": state.model.gamma.item(),
               "device": str(device), "threads": threads, "torch_version": torch.__version__}
    return final_checkpoint(state, cfg, tuple(data.shape[1:])), options


# --- local dimension ---------------------------------------------------------------------------------

@torch.no_grad()
def posterior_variances(model: VAE, x: torch.Tensor, *, batch_size: int = 256) -> np.ndarray:
    """Posterior variances v_phi(x), (N, latent_dim) float64, from the eval-mode encoder."""
    model.eval()
    dev = next(model.parameters()).device
    out = [model.encode(x[i:i + batch_size].to(dev))[1].double().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy()


def vae_local_dims(model: VAE, x: torch.Tensor, *, threshold: float = 0.5, batch_size: int = 256) -> np.ndarray:
    """Local dimension of each point (Appendix B): #{j : posterior variance v_j(x) < threshold}, (N,) int."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must lie in (0, 1) (the prior variance is 1), got {threshold}")
    return (posterior_variances(model, x, batch_size=batch_size) < threshold).sum(1)


def noisy(x: torch.Tensor, t: float | None, sde: VPSDE, *, seed: int) -> torch.Tensor:
    """x_t = alpha_t x + sigma_t eps with eps from `seed` (fixed evaluation noise); x itself for t None."""
    alpha, sigma = noise_scales(t, sde)
    if sigma == 0:
        return x
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype)
    return alpha * x + sigma * eps


def local_dims_table(checkpoints: Mapping[str, Mapping[str, Any]], points: Mapping[str, tuple[torch.Tensor, np.ndarray]],
                     *, threshold: float, seed: int, device: torch.device | str = "cpu") -> "pd.DataFrame":
    """Tidy table of VAE local dimensions.

    Args:
        checkpoints: condition name (``clean`` or ``t=<t>``) -> VAE checkpoint; its config's ``t`` says at which
            noise level it was trained, and its points are noised at that same level before encoding.
        points: dataset name (``heldout``, ``samples``) -> (x (N, 1, 28, 28) in [-1, 1], labels (N,)).
            Noisy VAEs are evaluated on ``heldout`` only (the samples are already at the smallest t).
        threshold: posterior variance below which a latent dim counts (Appendix B: 0.5).
        seed: seed of the evaluation noise.

    Returns:
        Columns estimator ("vae"), dataset, condition, point, label, t (NaN for clean), local_dim.
    """
    import pandas as pd

    rows = []
    for cond, ckpt in checkpoints.items():
        t = ckpt["config"]["t"]
        model = load_vae(ckpt, device=device)
        sde = VPSDE(**ckpt["config"]["sde"])
        for name, (x, labels) in points.items():
            if t is not None and name != "heldout":
                continue
            dims = vae_local_dims(model, noisy(x, t, sde, seed=seed), threshold=threshold)
            rows.append(pd.DataFrame({"estimator": "vae", "dataset": name, "condition": cond,
                                      "point": np.arange(len(x)), "label": np.asarray(labels, dtype=np.int64),
                                      "t": np.nan if t is None else float(t), "local_dim": dims.astype(np.float64)}))
    return pd.concat(rows, ignore_index=True)


def clean_heldout_local_dims(table: "pd.DataFrame") -> "pd.DataFrame":
    """The clean VAE's local dims on held-out digits (a `local_dim` column), the baseline for
    `score_geometry.plots.fig3_local_dims(diagnostics, baseline=...)`."""
    sel = (table["estimator"] == "vae") & (table["condition"] == "clean") & (table["dataset"] == "heldout")
    return table.loc[sel].reset_index(drop=True)


def condition_name(t: float | None) -> str:
    """``clean`` or ``t=<t>``: the name of a VAE's training condition (also its output folder)."""
    return "clean" if t is None else f"t={t:g}"
