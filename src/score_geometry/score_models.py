"""The score-model seam: every score model the pipeline analyses, as one `ScoreModel`, by kind.

A *model reference* is a dict with ``kind`` and ``config`` (the resolved run config), written by the
`train_model` rule (``model/model.pt``): the trained network's EMA weights (kinds ``unet``, ``mlp``), the
closed-form Gaussian oracle (``gaussian_oracle``), or where an external model lives (kinds ``callable``,
``torchscript``, ``diffusers``; see `external_reference`). Sampling, Jacobians, calibration and estimators
all call `load_score_model` on it and see only g(x, t). A new kind is one loader registered in `LOADERS`.

External models (the user's own), selected by ``model.source`` with ``model.path``:

* ``callable``: ``"package.module:function"`` or ``"path/to/file.py:function"``, called with ``model.kwargs``.
  It returns a `ScoreModel` (anything: the score is used as is), or a ``torch.nn.Module`` / callable
  ``net(x, t)`` with x (B, C, H, W) in [-1, 1] and t (B,) the VP-SDE time in [0, 1], whose output is read per
  ``model.parameterisation`` (``eps``: g = -out / sigma_t; ``x0``: g = (alpha_t out - x) / sigma_t^2).
* ``export``: a ``torch.export`` program saved with ``torch.export.save`` (``.pt2``), forward ``(x, t)`` as
  above, exported with a dynamic batch dimension (``dynamic_shapes={"x": {0: b}, "t": {0: b}}``, ``b =
  torch.export.Dim("batch")``): the Jacobians evaluate it on batches of many sizes.
* ``torchscript``: a file saved with ``torch.jit.save``, forward ``(x, t)`` as above (TorchScript is
  deprecated in recent torch, which warns; prefer ``export``).
* ``diffusers``: a directory holding a ``UNet2DModel`` (``config.json`` + weights, or ``unet/``) and its DDPM
  scheduler config (``scheduler_config.json`` or ``scheduler/``); an optional dependency. The discrete
  schedule is mapped to the continuous VP-SDE time by matching the noise level: the model is evaluated at
  the fractional timestep k(t) at which the scheduler's log alpha-bar (linearly interpolated) equals
  log alpha_t^2 of the run's SDE, and its ``prediction_type`` (epsilon, sample or v_prediction) is turned into
  the score with that alpha_t, sigma_t. So the run's ``sde:`` is used everywhere, and for the linear DDPM
  schedule (beta_start 1e-4, beta_end 0.02, 1,000 steps) k(t) ~ 1000 t - 1.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from .networks import load_ema_network
from .score import ScoreFn, make_score_fn
from .sde import VPSDE

__all__ = ["ScoreModel", "LOADERS", "EXTERNAL_KINDS", "load_score_model", "external_reference",
           "check_score_model", "diffusers_score", "timestep_for"]

EXTERNAL_KINDS = ("callable", "export", "torchscript", "diffusers")


@dataclass(frozen=True)
class ScoreModel:
    """A score model at time t: ``score(x, t)`` with x (B, *image_shape), t (B,) -> (B, *image_shape).

    Attributes:
        score: g(x, t), the estimate of grad_x log p_t(x) under `sde`.
        image_shape: (C, H, W) of one image (or (D,) for vector data).
        sde: the VP-SDE whose alpha_t, sigma_t the score refers to.
        kind: how it was built (a key of `LOADERS`).
        parameterisation: what a network predicts (eps, x0, ...), None for a closed form.
    """

    score: ScoreFn
    image_shape: tuple[int, ...]
    sde: VPSDE
    kind: str
    parameterisation: str | None = None

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.score(x, t)


@dataclass(frozen=True)
class LoadOptions:
    device: torch.device | str = "cpu"
    dtype: torch.dtype = torch.float32
    memory_format: torch.memory_format = torch.contiguous_format


Loader = Callable[[Mapping[str, Any], LoadOptions], ScoreModel]
LOADERS: dict[str, Loader] = {}


def register(kind: str) -> Callable[[Loader], Loader]:
    """Decorator: make `kind` loadable by `load_score_model`."""
    def deco(fn: Loader) -> Loader:
        LOADERS[kind] = fn
        return fn
    return deco


def load_score_model(reference: Mapping[str, Any], *, device: torch.device | str = "cpu",
                     dtype: torch.dtype = torch.float32,
                     memory_format: torch.memory_format = torch.contiguous_format) -> ScoreModel:
    """The score model a model reference (``model/model.pt``) points to, computing in `dtype` on `device`.

    `memory_format` is a trained network's parameter layout (`torch.channels_last` makes CPU Jacobians
    faster); the function computed is the same.
    """
    kind = reference.get("kind", "unet")
    if kind not in LOADERS:
        raise ValueError(f"score-model kind must be one of {sorted(LOADERS)}, got {kind!r}")
    return LOADERS[kind](reference, LoadOptions(device, dtype, memory_format))


def _sde(reference: Mapping[str, Any]) -> VPSDE:
    return VPSDE(**reference["config"]["sde"])


def _image_shape(reference: Mapping[str, Any], default: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(s) for s in reference.get("image_shape", default))


@register("unet")
@register("mlp")
def _trained_network(reference: Mapping[str, Any], opt: LoadOptions) -> ScoreModel:
    cfg = reference["config"]
    net = load_ema_network(reference, device=opt.device)
    if cfg["model"].get("architecture", "unet") == "unet":
        net = net.to(dtype=opt.dtype, memory_format=opt.memory_format)
    else:
        net = net.to(dtype=opt.dtype)
    sde, par = _sde(reference), cfg["model"]["parameterisation"]
    default = (1, 28, 28) if reference.get("kind", "unet") == "unet" else (3,)
    return ScoreModel(make_score_fn(net, sde, par), _image_shape(reference, default), sde,
                      reference.get("kind", "unet"), par)


@register("gaussian_oracle")
def _gaussian_oracle(reference: Mapping[str, Any], opt: LoadOptions) -> ScoreModel:
    from .oracle import GaussianSubspaceOracle

    st, sde = reference["state"], _sde(reference)
    oracle = GaussianSubspaceOracle(st["mu"], st["basis"], st["variances"], beta_min=sde.beta_min,
                                    beta_max=sde.beta_max).to(opt.device)
    return ScoreModel(lambda x, t: oracle(x, t), tuple(st["mu"].shape), sde, "gaussian_oracle")


def _wrap_network(net: Callable, reference: Mapping[str, Any], opt: LoadOptions) -> ScoreModel:
    """A user's net(x, t) read per ``model.parameterisation`` (eps or x0)."""
    if isinstance(net, torch.nn.Module):
        net = net.to(device=opt.device, dtype=opt.dtype)
        if not isinstance(net, torch.fx.GraphModule):  # an exported program is traced in eval mode already
            net = net.eval()
        for p in net.parameters():  # not requires_grad_(): ScriptModules lack it
            p.requires_grad_(False)
    sde, par = _sde(reference), reference["config"]["model"]["parameterisation"]
    return ScoreModel(make_score_fn(net, sde, par), _image_shape(reference, (1, 28, 28)), sde,
                      reference["kind"], par)


def import_target(target: str) -> Callable:
    """``"package.module:function"`` or ``"path/to/file.py:function"`` -> the function."""
    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"model.path for source callable must be 'module:function' or 'file.py:function', "
                         f"got {target!r}")
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise FileNotFoundError(f"model.path: no such file {path}")
        name = f"score_geometry_user_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"model.path: {module_name} has no attribute {attr!r}") from None


@register("callable")
def _callable(reference: Mapping[str, Any], opt: LoadOptions) -> ScoreModel:
    spec = reference["spec"]
    built = import_target(spec["path"])(**spec.get("kwargs", {}))
    if isinstance(built, ScoreModel):
        return built
    if not callable(built):
        raise TypeError(f"{spec['path']} returned {type(built).__name__}: expected a ScoreModel or net(x, t)")
    return _wrap_network(built, reference, opt)


@register("export")
def _export(reference: Mapping[str, Any], opt: LoadOptions) -> ScoreModel:
    net = torch.export.load(reference["spec"]["path"]).module()
    return _wrap_network(net, reference, opt)


@register("torchscript")
def _torchscript(reference: Mapping[str, Any], opt: LoadOptions) -> ScoreModel:
    net = torch.jit.load(reference["spec"]["path"], map_location=opt.device)
    return _wrap_network(net, reference, opt)


def _diffusers_parts(directory: Path):
    try:
        from diffusers import DDPMScheduler, UNet2DModel
    except ImportError:
        raise ImportError("model.source diffusers needs the optional dependency: pip install diffusers") from None
    sub = (lambda name: {"subfolder": name} if (directory / name).is_dir() else {})
    unet = UNet2DModel.from_pretrained(directory, **sub("unet"))
    scheduler = DDPMScheduler.from_pretrained(directory, **sub("scheduler"))
    return unet, scheduler


def timestep_for(log_alpha_bar: np.ndarray, log_alpha2: torch.Tensor) -> torch.Tensor:
    """Fractional discrete timestep k(t) with the same noise level: log alpha-bar_k (linearly interpolated
    over k = 0..N-1, decreasing) equal to log alpha_t^2; clamped to [0, N-1].

    Args:
        log_alpha_bar: (N,) the scheduler's log cumulative alpha products.
        log_alpha2: (B,) log alpha_t^2 of the continuous SDE.
    """
    k = np.interp(-log_alpha2.detach().double().cpu().numpy(), -log_alpha_bar, np.arange(len(log_alpha_bar)))
    return torch.as_tensor(k, dtype=log_alpha2.dtype, device=log_alpha2.device)


def diffusers_score(unet: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], prediction: str,
                    log_alpha_bar: np.ndarray, sde: VPSDE) -> ScoreFn:
    """g(x, t) of a discrete-time network ``unet(x, k)`` (k: (B,) fractional timesteps) that predicts
    `prediction` (diffusers' epsilon, sample or v_prediction) on the schedule `log_alpha_bar` (N,), evaluated
    at the timestep with the noise level of `sde` at t (`timestep_for`)."""
    if prediction not in ("epsilon", "sample", "v_prediction"):
        raise ValueError(f"diffusers scheduler prediction_type {prediction!r} is not supported")

    def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (x.dim() - 1)
        k = timestep_for(log_alpha_bar, -sde.integrated_beta(t.double())).to(x.dtype)
        out = unet(x, k)
        alpha, sigma = sde.alpha(t).to(x.dtype).view(shape), sde.sigma(t).to(x.dtype).view(shape)
        if prediction == "epsilon":
            return -out / sigma
        if prediction == "sample":
            return (alpha * out - x) / sigma**2
        return -(sigma * x + alpha * out) / sigma  # v = alpha eps - sigma x0, so eps = sigma x_t + alpha v

    return score


@register("diffusers")
def _diffusers(reference: Mapping[str, Any], opt: LoadOptions) -> ScoreModel:
    unet, scheduler = _diffusers_parts(Path(reference["spec"]["path"]))
    unet = unet.to(device=opt.device, dtype=opt.dtype).eval().requires_grad_(False)
    prediction = scheduler.config.prediction_type
    log_alpha_bar = np.log(scheduler.alphas_cumprod.double().numpy())
    sde = _sde(reference)
    score = diffusers_score(lambda x, k: unet(x, k).sample, prediction, log_alpha_bar, sde)
    size = unet.config.sample_size
    shape = (unet.config.in_channels, *((size, size) if isinstance(size, int) else size))
    return ScoreModel(score, tuple(int(s) for s in shape), sde, "diffusers", prediction)


def external_reference(cfg: Mapping[str, Any], image_shape: tuple[int, ...]) -> dict[str, Any]:
    """The model reference of an external model (``model.source`` other than ``train``): what to load, the
    run's config and the data's image shape. Loading happens in each job (`load_score_model`)."""
    model = cfg["model"]
    kind = model["source"]
    if kind not in EXTERNAL_KINDS:
        raise ValueError(f"model.source must be train or one of {EXTERNAL_KINDS}, got {kind!r}")
    if not model.get("path"):
        raise ValueError(f"config key model.path: required when model.source is {kind}")
    path = model["path"] if kind == "callable" else str(Path(model["path"]).resolve())
    return {"kind": kind, "spec": {"path": path, "kwargs": dict(model.get("kwargs") or {})},
            "config": dict(cfg), "step": 0, "image_shape": list(image_shape)}


def check_score_model(model: ScoreModel, image_shape: tuple[int, ...], *, times=(0.01, 0.3)) -> dict[str, float]:
    """Fail early, with the reason, if `model` cannot serve data of `image_shape`: its image shape and the
    shape and finiteness of g(x, t) on a small batch of Gaussian inputs at `times`.

    Returns:
        {"score_rms_t=<t>": RMS of g at each t} (about 1 / sigma_t for a calibrated model far from the data).
    """
    if tuple(model.image_shape) != tuple(image_shape):
        raise ValueError(f"the score model's image shape {tuple(model.image_shape)} differs from the data's "
                         f"{tuple(image_shape)}")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((2, *image_shape), generator=gen)
    out = {}
    with torch.no_grad():
        for t in times:
            g = model.score(x, torch.full((2,), float(t)))
            if tuple(g.shape) != tuple(x.shape):
                raise ValueError(f"the score model returned shape {tuple(g.shape)} for inputs {tuple(x.shape)}")
            if not torch.isfinite(g).all():
                raise ValueError(f"the score model returned non-finite values at t = {t}")
            out[f"score_rms_t={t}"] = float(g.pow(2).mean().sqrt())
    return out
