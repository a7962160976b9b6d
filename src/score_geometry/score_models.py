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
  scheduler config (``scheduler_config.json`` or ``scheduler/``), as a pipeline's ``save_pretrained`` writes
  them; a directory that ``unet.save_pretrained`` alone wrote (no scheduler) is read with the default linear
  DDPM schedule (`DEFAULT_DDPM_SCHEDULE`: beta 1e-4 to 0.02, 1,000 steps, epsilon prediction), and a warning
  says so. An optional dependency. The discrete
  schedule is mapped to the continuous VP-SDE time by matching the noise level: the model is evaluated at
  the fractional timestep k(t) at which the scheduler's log alpha-bar (linearly interpolated) equals
  log alpha_t^2 of the run's SDE, and its ``prediction_type`` (epsilon, sample or v_prediction) is turned into
  the score with that alpha_t, sigma_t. So the run's ``sde:`` is used everywhere, and for the linear DDPM
  schedule (beta_start 1e-4, beta_end 0.02, 1,000 steps) k(t) ~ 1000 t - 1.

In a script, `load_external` loads and checks one of these by its source and path (the CLI uses it). A loader
that fails raises `ModelLoadError` naming the source, the file and the layout expected (`EXPECTED_LAYOUT`).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from .config import diffusers_unet_dir, diffusers_unet_shape
from .io import _first_line
from .networks import load_ema_network
from .score import ScoreFn, make_score_fn
from .sde import VPSDE

__all__ = ["ScoreModel", "LOADERS", "EXTERNAL_KINDS", "load_score_model", "load_external", "external_reference",
           "check_score_model", "diffusers_score", "timestep_for", "ModelLoadError", "EXPECTED_LAYOUT",
           "DEFAULT_DDPM_SCHEDULE"]

log = logging.getLogger(__name__)

EXTERNAL_KINDS = ("callable", "export", "torchscript", "diffusers")
#: What each external source's ``path`` must be: the end of every `ModelLoadError`.
EXPECTED_LAYOUT = {
    "callable": "'package.module:function' or 'file.py:function', a function returning a ScoreModel or a "
                "net(x, t) that returns a tensor of x's shape",
    "export": "a program saved with torch.export.save (.pt2), forward (x, t), exported with a dynamic batch "
              "dimension",
    "torchscript": "a file saved with torch.jit.save, forward (x, t)",
    "diffusers": "a directory with unet/ (UNet2DModel: config.json + weights) and scheduler/ "
                 "(scheduler_config.json), as a pipeline's save_pretrained writes them, or a directory that "
                 "unet.save_pretrained alone wrote (read with the default linear DDPM schedule: beta 1e-4 to "
                 "0.02, 1000 steps, epsilon prediction)",
}
#: The scheduler of a diffusers directory that has none: diffusers' DDPM defaults, stated.
DEFAULT_DDPM_SCHEDULE = {"num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 1e-4,
                         "beta_end": 0.02, "prediction_type": "epsilon"}
#: Times at which `check_score_model` and `load_external` evaluate a model unless told otherwise.
CHECK_TIMES = (0.01, 0.3)


class ModelLoadError(ValueError):
    """An external model cannot be loaded or does not serve the data; the message names the source, the file
    and what is expected there."""


@contextmanager
def _loading(source: str, path: Any, what: str | None = None) -> Iterator[None]:
    """Turn any error raised inside into one `ModelLoadError` line: `source`, `path`, `what` went wrong (else
    the error's first line) and `EXPECTED_LAYOUT`. A ModelLoadError passes through unchanged."""
    try:
        yield
    except ModelLoadError:
        raise
    except Exception as e:
        raise _load_error(source, path, _reason(e, what)) from e


def _reason(e: BaseException, what: str | None) -> str:
    """`what` went wrong, with the error's type and first sentence (the rest of torch's messages guesses at
    causes: "internal miniz error", ...); without `what`, the error's own first line (our checks' messages)."""
    if what:
        return f"{what} ({_first_line(e).split('. ')[0]})"
    return (str(e).strip().splitlines() or [_first_line(e)])[0]


def _load_error(source: str, path: Any, reason: str) -> ModelLoadError:
    return ModelLoadError(f"{source} model {path}: {reason}; expected {EXPECTED_LAYOUT[source]}")


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
    kind = _reference_kind(reference)
    return LOADERS[kind](reference, LoadOptions(device, dtype, memory_format))


def _reference_kind(reference: Any) -> str:
    """The kind of a model reference, or a TypeError / ValueError saying what a reference must hold."""
    if not isinstance(reference, Mapping):
        raise TypeError(f"a model reference is a dict (a run's model/model.pt, read with io.load_checkpoint), got "
                        f"{type(reference).__name__}")
    kind = reference.get("kind", "unet")
    if kind not in LOADERS:
        raise ValueError(f"score-model kind must be one of {sorted(LOADERS)}, got {kind!r}")
    hint = (f"; to load an external model in a script use score_geometry.load_external({kind!r}, path, ...)"
            if kind in EXTERNAL_KINDS else "")
    if not isinstance(reference.get("config"), Mapping):
        raise ValueError(f"a model reference needs 'config', the run's resolved config (with its sde: and model: "
                         f"sections); this one has keys {list(reference)}{hint}")
    if kind in EXTERNAL_KINDS and not (reference.get("spec") or {}).get("path"):
        raise ValueError(f"a model reference of kind {kind} needs spec.path, where the model lives{hint}")
    return kind


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
    path, kwargs = reference["spec"]["path"], dict(reference["spec"].get("kwargs") or {})
    with _loading("callable", path, "cannot import it"):
        function = import_target(path)
    with _loading("callable", path, f"calling it with kwargs {kwargs} failed"):
        built = function(**kwargs)
    if isinstance(built, ScoreModel):
        return built
    if not callable(built):
        raise _load_error("callable", path, f"it returned {type(built).__name__}")
    return _wrap_network(built, reference, opt)


@register("export")
def _export(reference: Mapping[str, Any], opt: LoadOptions) -> ScoreModel:
    path = _existing_file("export", reference["spec"]["path"])
    if not _is_export_archive(path):  # checked first: torch.export.load logs a traceback on other files
        raise _load_error("export", path, "not a torch.export.save program (.pt2)")
    with _loading("export", path, "cannot load this torch.export program"):
        net = torch.export.load(path).module()
    return _wrap_network(net, reference, opt)


def _existing_file(source: str, path: str | Path) -> Path:
    if not Path(path).is_file():
        raise _load_error(source, path, "no such file")
    return Path(path)


def _is_export_archive(path: Path) -> bool:
    """Whether `path` is a zip archive with the ``archive_format`` record torch.export.save writes."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(name.rpartition("/")[2] == "archive_format" for name in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


@register("torchscript")
def _torchscript(reference: Mapping[str, Any], opt: LoadOptions) -> ScoreModel:
    path = _existing_file("torchscript", reference["spec"]["path"])
    if not zipfile.is_zipfile(path):  # checked first: torch.jit.load warns of its deprecation before it fails
        raise _load_error("torchscript", path, "not a torch.jit.save file (not a zip archive)")
    with _loading("torchscript", path, "not a torch.jit.save file"):
        net = torch.jit.load(path, map_location=opt.device)
    return _wrap_network(net, reference, opt)


def _diffusers_parts(directory: Path, dtype: torch.dtype):
    """The UNet2DModel (loaded in `dtype`: casting it afterwards makes diffusers warn) and the DDPM scheduler
    of a diffusers directory; the default schedule, with a warning, where it has none."""
    try:
        from diffusers import DDPMScheduler, UNet2DModel
    except ImportError:
        raise ImportError("model.source diffusers needs the optional dependency: pip install diffusers") from None
    if not directory.is_dir():
        raise _load_error("diffusers", directory, "no such directory")
    unet_dir = diffusers_unet_dir(directory)
    with _loading("diffusers", directory, f"no UNet2DModel in {unet_dir}"):
        # without accelerate, diffusers' default low_cpu_mem_usage=True prints a warning and falls back to False
        unet = UNet2DModel.from_pretrained(unet_dir, torch_dtype=dtype,
                                           low_cpu_mem_usage=importlib.util.find_spec("accelerate") is not None)
    scheduler_dir = directory / "scheduler" if (directory / "scheduler").is_dir() else directory
    if scheduler_dir != directory or (directory / "scheduler_config.json").is_file():
        with _loading("diffusers", directory, "cannot read its DDPM scheduler"):
            scheduler = DDPMScheduler.from_pretrained(scheduler_dir)
    else:
        log.warning("diffusers model %s has no scheduler (scheduler/ or scheduler_config.json): read with the "
                    "default linear DDPM schedule, beta 1e-4 to 0.02 over 1000 steps, epsilon prediction", directory)
        scheduler = DDPMScheduler(**DEFAULT_DDPM_SCHEDULE)
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
    directory = Path(reference["spec"]["path"])
    unet, scheduler = _diffusers_parts(directory, opt.dtype)
    unet = unet.to(device=opt.device).eval().requires_grad_(False)
    prediction = scheduler.config.prediction_type
    log_alpha_bar = np.log(scheduler.alphas_cumprod.double().numpy())
    sde = _sde(reference)
    with _loading("diffusers", directory):
        score = diffusers_score(lambda x, k: unet(x, k).sample, prediction, log_alpha_bar, sde)
    shape = diffusers_unet_shape(unet.config)
    if shape is None:
        raise _load_error("diffusers", directory, "its UNet's config.json gives no in_channels and sample_size")
    return ScoreModel(score, shape, sde, "diffusers", prediction)


def external_reference(cfg: Mapping[str, Any], image_shape: Sequence[int] | None) -> dict[str, Any]:
    """The model reference of an external model (``model.source`` other than ``train``): what to load, the
    run's config and the data's image shape (None: the model's own, for diffusers, else (1, 28, 28)). Loading
    happens in each job (`load_score_model`)."""
    model = cfg["model"]
    kind = model["source"]
    if kind not in EXTERNAL_KINDS:
        raise ValueError(f"model.source must be train or one of {EXTERNAL_KINDS}, got {kind!r}")
    if not model.get("path"):
        raise ValueError(f"config key model.path: required when model.source is {kind}")
    path = model["path"] if kind == "callable" else str(Path(model["path"]).resolve())
    ref = {"kind": kind, "spec": {"path": path, "kwargs": dict(model.get("kwargs") or {})}, "config": dict(cfg),
           "step": 0}
    return ref if image_shape is None else {**ref, "image_shape": [int(s) for s in image_shape]}


def load_external(source: str, path: str | Path, *, parameterisation: str = "eps",
                  kwargs: Mapping[str, Any] | None = None, beta_min: float = 0.1, beta_max: float = 20.0,
                  image_shape: Sequence[int] | None = None, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32, times: Sequence[float] = CHECK_TIMES) -> ScoreModel:
    """An external model (the config's ``model.source`` / ``model.path``; the module docstring) as a
    `ScoreModel` on the VP-SDE (`beta_min`, `beta_max`), loaded and checked on a small batch at `times`.

        model = load_external("diffusers", "ddpm-mnist/", image_shape=(1, 28, 28))

    Args:
        source: callable, export, torchscript or diffusers.
        path: ``module:function`` or ``file.py:function`` (callable), a file, or a directory (diffusers).
        parameterisation: what a callable/export/torchscript network predicts, eps or x0 (diffusers: its
            scheduler's prediction_type).
        kwargs: keyword arguments of the callable.
        image_shape: (C, H, W) of the images it will see: the model must take exactly these. None: the UNet's
            for diffusers, else (1, 28, 28).
        times: where the score is checked to have the image shape and finite values.

    Raises:
        ModelLoadError: it cannot be loaded, or fails the check; the message names `source`, `path` and what
            is expected there.
    """
    cfg = {"sde": {"beta_min": beta_min, "beta_max": beta_max},
           "model": {"source": source, "path": str(path), "kwargs": dict(kwargs or {}),
                     "parameterisation": parameterisation}}
    reference = external_reference(cfg, image_shape)
    model = load_score_model(reference, device=device, dtype=dtype)
    with _loading(source, reference["spec"]["path"]):
        check_score_model(model, model.image_shape if image_shape is None else tuple(image_shape), times=times,
                          device=device, dtype=dtype)
    return model


def check_score_model(model: ScoreModel, image_shape: tuple[int, ...], *, times: Sequence[float] = CHECK_TIMES,
                      device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """Fail early, with the reason, if `model` cannot serve data of `image_shape`: its image shape and the
    type, shape and finiteness of g(x, t) on a small batch of Gaussian inputs (in `dtype` on `device`, where
    the model computes) at each of `times` (pass every time to be analysed: a score may be NaN on a band of t
    only).

    Raises:
        ValueError: naming the shapes, or the time at which g fails, is not a tensor, or is not finite.

    Returns:
        {"score_rms_t=<t>": RMS of g at each t} (about 1 / sigma_t for a calibrated model far from the data).
    """
    if tuple(model.image_shape) != tuple(image_shape):
        raise ValueError(f"the score model's image shape {tuple(model.image_shape)} differs from the data's "
                         f"{tuple(image_shape)}")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((2, *image_shape), generator=gen).to(device=device, dtype=dtype)
    out = {}
    with torch.no_grad():
        for t in times:
            try:
                g = model.score(x, torch.full((2,), float(t), device=device, dtype=dtype))
            except Exception as e:
                raise ValueError(f"the score model failed on inputs {tuple(x.shape)} at t = {t}: "
                                 f"{_first_line(e)}") from e
            if not isinstance(g, torch.Tensor):
                raise ValueError(f"the score model returned {type(g).__name__} at t = {t}: expected a tensor of "
                                 f"shape {tuple(x.shape)}")
            if tuple(g.shape) != tuple(x.shape):
                raise ValueError(f"the score model returned shape {tuple(g.shape)} for inputs {tuple(x.shape)}")
            if not torch.isfinite(g).all():
                raise ValueError(f"the score model returned non-finite values at t = {t}")
            out[f"score_rms_t={t}"] = float(g.pow(2).mean().sqrt())
    return out
