"""The VAE baseline of Appendix B (after Dai & Wipf 2019) and its local dimension: latent dims with posterior variance < 0.5.

Model: prior p(z) = N(0, I) on R^latent_dim; likelihood p(x | z) = N(x; mu_theta(z), gamma^2 I) with a conv
decoder mean and ONE learned scalar gamma; posterior q(z | x) = N(mu_phi(x), diag(v_phi(x))) from a conv encoder.
Conv + batch-norm + ReLU layers in the DCGAN style. With a learned gamma the optimum drives gamma towards the
data's noise level and, in Dai & Wipf's analysis, the posterior variance of exactly the latent dims that the
data manifold needs towards 0 (the others stay at the prior's 1), so counting v_j < threshold estimates the
local dimension of x.

gamma is either learned by Adam like every other parameter (``vae.gamma: learned``, optionally with its own
learning rate ``vae.gamma_lr``) or set every step to its closed-form optimum given the decoder,
gamma = sqrt(per-pixel MSE of the batch), detached (``closed_form``; Rybkin et al. 2021's "optimal sigma"): then
gamma can never lag the reconstruction error, which is what made the count track the epoch budget
(docs/vae.md). Each epoch also records, on held-out digits, sqrt(MSE) and the count per class, from which
`score_geometry.claims.vae_converged` decides convergence.

Training runs on the engine of `score_geometry.training` (one epoch a unit), resumable like the score model's:
one `torch.Generator` draws every random number (epoch permutations, reparameterisation noise, input noise) and
its state is checkpointed with the model and optimiser at epoch boundaries, so on the CPU a killed and resumed
run ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import torch
from torch import nn

from . import io
from .sde import VPSDE

if TYPE_CHECKING:
    from .training import TrainState

log = logging.getLogger(__name__)

ARCHS = ("conv", "mlp")
GAMMA_MODES = ("learned", "closed_form")


# --- networks ---------------------------------------------------------------------------------------

def _quarter(image_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(C, H/4, W/4) of images (C, H, W) whose sides are multiples of 4 (the conv VAE halves them twice)."""
    c, h, w = (int(s) for s in image_shape)
    if h % 4 or w % 4:
        raise ValueError(f"vae.arch 'conv' halves the image twice: H and W must be multiples of 4, got {(h, w)}; "
                         "use vae.arch 'mlp' for other shapes")
    return c, h // 4, w // 4


class ConvEncoder(nn.Module):
    """x (B, C, H, W) -> posterior mean and log-variance (B, latent_dim) each; widths w, 2w at H/2, H/4 px
    (14, 7 for MNIST)."""

    def __init__(self, latent_dim: int, width: int, image_shape: tuple[int, ...] = (1, 28, 28)) -> None:
        super().__init__()
        c, h, w = _quarter(image_shape)
        self.net = nn.Sequential(
            nn.Conv2d(c, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),                # 28 -> 14
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width), nn.ReLU(),    # 14 -> 7
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * width * h * w, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.head(self.net(x)).chunk(2, dim=1)
        return mean, logvar


class ConvDecoder(nn.Module):
    """z (B, latent_dim) -> likelihood mean (B, C, H, W); transposed convs H/4 -> H/2 -> H px (7 -> 14 -> 28 for
    MNIST; a DCGAN generator)."""

    def __init__(self, latent_dim: int, width: int, image_shape: tuple[int, ...] = (1, 28, 28)) -> None:
        super().__init__()
        c, h, w = _quarter(image_shape)
        self.width, self.low = width, (h, w)
        self.fc = nn.Sequential(nn.Linear(latent_dim, 2 * width * h * w), nn.BatchNorm1d(2 * width * h * w), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),  # 7 -> 14
            nn.ConvTranspose2d(width, c, 4, 2, 1),                                            # 14 -> 28
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(-1, 2 * self.width, *self.low))


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
        gamma_mode: ``learned`` (log gamma is a parameter the optimiser moves) or ``closed_form`` (every training
            step sets gamma to sqrt(per-pixel MSE of the batch), detached; log gamma then takes no gradient).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, *, gamma_min: float = 1e-3,
                 gamma_mode: str = "learned") -> None:
        super().__init__()
        if gamma_mode not in GAMMA_MODES:
            raise ValueError(f"vae.gamma must be one of {GAMMA_MODES}, got {gamma_mode!r}")
        self.encoder, self.decoder = encoder, decoder
        self.log_gamma = nn.Parameter(torch.zeros(()), requires_grad=gamma_mode == "learned")
        self.gamma_min = float(gamma_min)
        self.gamma_mode = gamma_mode

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
        sq = (x - x_hat).pow(2).flatten(1).sum(1)
        if self.gamma_mode == "closed_form":
            # gamma's optimum given the decoder is sqrt(MSE); set it from this batch, outside the graph.
            with torch.no_grad():
                self.log_gamma.copy_(0.5 * torch.log(sq.mean() / D))
        gamma = self.gamma
        recon = 0.5 * sq / gamma**2 + D * torch.log(gamma) + 0.5 * D * math.log(2 * math.pi)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1).sum(1)
        active = (logvar.detach().exp() < threshold).sum(1).double()
        return {"loss": (recon + kl).mean(), "recon": recon.mean(), "kl": kl.mean(), "mse": sq.mean() / D,
                "active_dims": active.mean()}

    @torch.no_grad()
    def heldout_metrics(self, x: torch.Tensor, labels: np.ndarray, *, seed: int, threshold: float = 0.5,
                        batch_size: int = 256) -> dict[str, Any]:
        """Eval-mode convergence metrics on held-out points: per-pixel MSE of x against the decoder mean at
        z ~ q(z | x) (the quantity gamma estimates), and the count of latent dims with posterior variance <
        `threshold`: mean, std and mean per label (a dict keyed by the label as a string).

        Args:
            x: (N, *S) held-out data, already noised if the VAE is trained on x_t.
            labels: (N,) class labels.
            seed: seed of the reparameterisation noise (a generator of its own: the training draws are untouched).
        """
        was_training = self.training
        self.eval()
        gen = torch.Generator(device=x.device).manual_seed(seed)
        sq, counts = [], []
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            mean, logvar = self.encoder(xb)
            z = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=gen, device=mean.device)
            sq.append((xb - self.decoder(z)).pow(2).flatten(1).mean(1).double().cpu())
            counts.append((logvar.exp() < threshold).sum(1).double().cpu())
        self.train(was_training)
        mse, n = torch.cat(sq).numpy(), torch.cat(counts).numpy()
        labels = np.asarray(labels)
        return {"heldout_mse": float(mse.mean()), "heldout_active_dims": float(n.mean()),
                "heldout_active_dims_std": float(n.std()),
                "heldout_active_dims_by_label": {str(int(c)): float(n[labels == c].mean()) for c in np.unique(labels)}}


def build_vae(vae_cfg: Mapping[str, Any], data_shape: tuple[int, ...] = (1, 28, 28)) -> VAE:
    """The VAE of a ``vae:`` config section (``arch``, ``latent_dim``, ``width``, ``gamma``: learned (default) or
    closed_form) for data of `data_shape`."""
    arch, latent, width = vae_cfg["arch"], vae_cfg["latent_dim"], vae_cfg["width"]
    mode = vae_cfg.get("gamma", "learned")
    if arch == "conv":
        if len(data_shape) != 3:
            raise ValueError(f"vae.arch 'conv' needs images (C, H, W), got data_shape {tuple(data_shape)}; "
                             "use vae.arch 'mlp' for vector data")
        return VAE(ConvEncoder(latent, width, data_shape), ConvDecoder(latent, width, data_shape), gamma_mode=mode)
    if arch == "mlp":
        return VAE(MLPEncoder(math.prod(data_shape), latent, width), MLPDecoder(tuple(data_shape), latent, width),
                   gamma_mode=mode)
    raise ValueError(f"vae.arch must be one of {ARCHS}, got {arch!r}")


# --- training ---------------------------------------------------------------------------------------

def resume_hash(cfg: Mapping[str, Any]) -> str:
    """Hash of what a resumed run must share with its checkpoint (not the epoch count or logging cadence)."""
    vae = {k: v for k, v in cfg["vae"].items() if k not in ("epochs", "checkpoint_every", "threshold", "times")}
    from .datasets import data_identity

    data = data_identity(cfg["data"]) if cfg.get("data") is not None else None
    return io.config_hash({"seed": cfg["seed"], "vae": vae, "sde": cfg["sde"], "t": cfg["t"], "data": data})


def _optimizer(model: VAE, vcfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """Adam over the trainable parameters; a learned log gamma gets ``vae.gamma_lr`` when it is set."""
    gamma_lr = vcfg.get("gamma_lr")
    if model.gamma_mode == "learned" and gamma_lr is not None:
        rest = [p for name, p in model.named_parameters() if name != "log_gamma"]
        return torch.optim.Adam([{"params": rest}, {"params": [model.log_gamma], "lr": gamma_lr}], lr=vcfg["lr"])
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=vcfg["lr"])


def train_vae(data: torch.Tensor, cfg: Mapping[str, Any], *, checkpoint_path: str | Path,
              metrics_path: str | Path, device: torch.device | str = "cpu",
              heldout: tuple[torch.Tensor, np.ndarray] | None = None, progress: bool = True) -> TrainState:
    """Train (or resume) the VAE to ``cfg["vae"]["epochs"]`` epochs on `data`, noised at ``cfg["t"]`` if set.

    Args:
        data: (N, *S) training data (images in [-1, 1]: (N, 1, 28, 28)).
        cfg: ``seed``, ``sde``, ``t`` (None = clean, else x_t = alpha_t x + sigma_t eps with fresh eps every
            batch) and ``vae`` (arch, latent_dim, width, epochs, batch_size, lr, checkpoint_every). Its hash is
            stored in the checkpoint; one made with a different config is never resumed from. ``vae.gamma``
            (learned | closed_form, default learned) and ``vae.gamma_lr`` (None = ``vae.lr``) set how gamma moves.
        checkpoint_path: rolling training state, rewritten atomically every ``checkpoint_every`` epochs and at the end.
        metrics_path: JSONL, one record per epoch: epoch, step, the training means of loss, recon, kl, mse and
            active_dims, gamma at the epoch's end, seconds, steps_per_s; with `heldout` also
            `VAE.heldout_metrics`'s keys.
        heldout: (x (M, *S), labels (M,)) held-out data for the per-epoch convergence metrics, noised at ``t``
            with the evaluation noise of `local_dims_table` (seed + 1); None records none.

    Returns:
        The final TrainState (`epoch` epochs, `step` optimiser steps; no EMA).

    Raises:
        FloatingPointError: on a non-finite loss; the last good checkpoint is kept.
    """
    from .training import engine  # here only: the local-dimension tables do not load the training code

    vcfg, sde, t = cfg["vae"], VPSDE(**cfg["sde"]), cfg["t"]
    n, bs = data.shape[0], vcfg["batch_size"]
    if n < 2 * bs:
        raise ValueError(f"vae.batch_size={bs} needs at least {2 * bs} training points, got {n}; lower vae.batch_size")
    state = engine.init_state(lambda: build_vae(vcfg, tuple(data.shape[1:])), lambda model: _optimizer(model, vcfg),
                              seed=cfg["seed"], device=device)
    data = data.to(device)
    x_held = None if heldout is None else noisy(heldout[0], t, sde, seed=cfg["seed"] + 1).to(device)

    def epoch(state: TrainState) -> dict[str, Any]:
        t0, sums, nb = time.perf_counter(), {}, 0
        state.model.train()
        perm = torch.randperm(n, generator=state.generator, device=state.generator.device).to(data.device)
        # Drop the last partial batch: batch-norm needs more than one example.
        for b0 in range(0, n - bs + 1, bs):
            x = data[perm[b0:b0 + bs]]
            if t is not None:
                # Noisy data at the paper's sigma_t, fresh eps every batch.
                x = sde.perturb(x, t, torch.randn(x.shape, generator=state.generator, device=x.device))
            parts = state.model.negative_elbo(x, generator=state.generator, threshold=vcfg["threshold"])
            engine.optimizer_step(state, parts["loss"])
            nb += 1
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v.item()
        state.epoch += 1
        rec = {**{k: v / nb for k, v in sums.items()}, "gamma": state.model.gamma.item()}
        if x_held is not None:
            rec.update(state.model.heldout_metrics(x_held, heldout[1], seed=cfg["seed"] + 1,
                                                   threshold=vcfg["threshold"]))
        rec["seconds"] = time.perf_counter() - t0
        log.info("epoch %d: loss %.1f, kl %.1f, gamma %.4f, sqrt(mse) %.4f, active dims %.1f (held-out %s)",
                 state.epoch, rec["loss"], rec["kl"], rec["gamma"], math.sqrt(rec["mse"]), rec["active_dims"],
                 f"{rec['heldout_active_dims']:.1f}" if x_held is not None else "-")
        return rec

    run = engine.Run(Path(checkpoint_path), Path(metrics_path), cfg, resume_hash(cfg))
    return engine.fit(state, epoch, total=vcfg["epochs"], unit="epoch", run=run,
                      checkpoint_every=vcfg["checkpoint_every"], device=device, progress=progress, desc="vae")


def final_checkpoint(state: TrainState, cfg: Mapping[str, Any], data_shape: tuple[int, ...],
                     n_train: int | None = None) -> dict[str, Any]:
    """What evaluation needs: weights, data shape, epoch/step, the number of training points and the resolved config."""
    return {"kind": "vae", "state": state.model.state_dict(), "data_shape": list(data_shape),
            "epoch": state.epoch, "step": state.step, "n_train": n_train, "config": dict(cfg)}


def load_vae(checkpoint: Mapping[str, Any], *, device: torch.device | str = "cpu") -> VAE:
    """Rebuild the VAE (eval mode, no grads) from `final_checkpoint`'s dict."""
    model = build_vae(checkpoint["config"]["vae"], tuple(checkpoint["data_shape"])).to(device)
    model.load_state_dict(checkpoint["state"])
    return model.eval().requires_grad_(False)


def fit_vae(data: torch.Tensor, cfg: Mapping[str, Any], *, checkpoint_path: str | Path, metrics_path: str | Path,
            device: torch.device | str = "cpu", threads: int = 1,
            heldout: tuple[torch.Tensor, np.ndarray] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the VAE (resumably, with `train_vae`'s held-out metrics); return the final checkpoint and the
    options dict to dump beside it."""
    state = train_vae(data, cfg, checkpoint_path=checkpoint_path, metrics_path=metrics_path, device=device,
                      heldout=heldout)
    options = {**dict(cfg), "n_parameters": sum(p.numel() for p in state.model.parameters()),
               "n_train": int(data.shape[0]), "final_epoch": state.epoch, "final_step": state.step,
               "final_gamma": state.model.gamma.item(), "device": str(device), "threads": threads,
               "torch_version": torch.__version__}
    return final_checkpoint(state, cfg, tuple(data.shape[1:]), int(data.shape[0])), options


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
    if t is None:
        return x
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype)
    return sde.perturb(x, t, eps)


def training_label(checkpoint: Mapping[str, Any]) -> str:
    """What a VAE was trained on, for legends: ``mnist5k, 4,500 images, 20 epochs`` (``t=0.3`` appended if noisy)."""
    data = checkpoint["config"].get("data") or {}
    n = checkpoint.get("n_train")
    what = f"{data.get('dataset', 'data')}, " + (f"{n:,} images, " if n else "")
    t = checkpoint["config"].get("t")
    return what + f"{checkpoint['epoch']} epochs" + ("" if t is None else f", x_t at t={t:g}")


def local_dims_table(checkpoints: Mapping[str, Mapping[str, Any]], points: Mapping[str, tuple[torch.Tensor, np.ndarray]],
                     *, threshold: float, seed: int, device: torch.device | str = "cpu",
                     metrics: Mapping[str, list[dict]] | None = None) -> "pd.DataFrame":
    """Tidy table of VAE local dimensions.

    Args:
        checkpoints: condition name (``clean`` or ``t=<t>``) -> VAE checkpoint; its config's ``t`` says at which
            noise level it was trained, and its points are noised at that same level before encoding.
        points: dataset name (``heldout``, ``samples``) -> (x (N, 1, 28, 28) in [-1, 1], labels (N,)).
            Noisy VAEs are evaluated on ``heldout`` only (the samples are already at the smallest t).
        threshold: posterior variance below which a latent dim counts (Appendix B: 0.5).
        seed: seed of the evaluation noise.
        metrics: condition name -> that VAE's per-epoch metrics records; its verdict of
            `score_geometry.claims.vae_converged` fills ``converged`` (False for a condition without records).

    Returns:
        Columns estimator ("vae"), dataset, condition, point, label, t (NaN for clean), local_dim, and per
        condition: converged (bool), epochs, trained_on (`training_label`).
    """
    import pandas as pd

    from .claims import vae_converged

    rows = []
    for cond, ckpt in checkpoints.items():
        t = ckpt["config"]["t"]
        model = load_vae(ckpt, device=device)
        sde = VPSDE(**ckpt["config"]["sde"])
        records = (metrics or {}).get(cond) or []
        converged = bool(records) and vae_converged(records)[0]
        for name, (x, labels) in points.items():
            if t is not None and name != "heldout":
                continue
            dims = vae_local_dims(model, noisy(x, t, sde, seed=seed), threshold=threshold)
            rows.append(pd.DataFrame({"estimator": "vae", "dataset": name, "condition": cond,
                                      "point": np.arange(len(x)), "label": np.asarray(labels, dtype=np.int64),
                                      "t": np.nan if t is None else float(t), "local_dim": dims.astype(np.float64),
                                      "converged": converged, "epochs": int(ckpt["epoch"]),
                                      "trained_on": training_label(ckpt)}))
    return pd.concat(rows, ignore_index=True)


def posterior_variance_table(checkpoints: Mapping[str, Mapping[str, Any]], x: torch.Tensor, labels: np.ndarray, *,
                             seed: int, per_class: int = 100, device: torch.device | str = "cpu") -> "pd.DataFrame":
    """Every latent dim's posterior variance on held-out points (the histogram of docs/vae.md: is it bimodal?).

    Args:
        checkpoints: condition name -> VAE checkpoint, as in `local_dims_table` (points noised at its ``t``).
        x: (N, 1, 28, 28) held-out points in [-1, 1]; labels: (N,).
        seed: seed of the evaluation noise (the same as `local_dims_table`'s).
        per_class: at most this many points of each label (the first ones), to keep the table small.

    Returns:
        Columns condition, point, label, latent, variance (float64); one row per point and latent dim.
    """
    import pandas as pd

    labels = np.asarray(labels, dtype=np.int64)
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)])
    keep.sort()
    rows = []
    for cond, ckpt in checkpoints.items():
        model = load_vae(ckpt, device=device)
        xt = noisy(x, ckpt["config"]["t"], VPSDE(**ckpt["config"]["sde"]), seed=seed)[keep]
        var = posterior_variances(model, xt)
        n, k = var.shape
        rows.append(pd.DataFrame({"condition": cond, "point": np.repeat(keep, k), "label": np.repeat(labels[keep], k),
                                  "latent": np.tile(np.arange(k), n), "variance": var.ravel()}))
    return pd.concat(rows, ignore_index=True)


def conditions(vae_cfg: Mapping[str, Any]) -> list[float | None]:
    """The VAE's training conditions: clean (None), then noisy at each of ``vae.times``."""
    return [None, *vae_cfg["times"]]


def condition_name(t: float | None) -> str:
    """``clean`` or ``t=<t>``: the name of a VAE's training condition (also its output folder)."""
    return "clean" if t is None else f"t={t:g}"


def _noise_scales(t: float | None, sde: VPSDE) -> tuple[float, float]:
    """0.1.0's ``vae.noise_scales``: (alpha_t, sigma_t) of the VP-SDE at `t`; (1, 0) for clean data (t None)."""
    return (1.0, 0.0) if t is None else sde.scales(t)


from ._deprecation import moved_names  # noqa: E402

__getattr__ = moved_names(__name__, {
    "noise_scales": "score_geometry.vae:_noise_scales | score_geometry.sde.VPSDE.scales(t) ((1, 0) for clean data)",
    "clean_heldout_local_dims": "score_geometry.baselines.tables:clean_heldout_vae",
})
