"""Exact per-sample Jacobians of batched vector fields (score models).

The score model ``g(x, t)`` maps a batch of images ``(B, C, H, W)`` (``(B, 1, 28, 28)``
for MNIST) to a batch of the same shape and every output row depends only on its own
input row (convolutions, GroupNorm, attention over pixels of one image, ...).  For such
maps the per-sample Jacobian ``J[b] = d g(x)[b] / d x[b]`` (a ``(D, D)`` matrix,
``D = C·H·W``: 784 for MNIST, 768 for 3x16x16) can be computed exactly with reverse-mode AD.

Method ``"vmap"`` (the default on accelerators)
    One forward pass of the (sub-)batch through ``torch.func.vjp`` followed by
    a single *vectorised* backward pass (``torch.func.vmap`` over the vjp) with
    the identity basis as cotangents.  Because rows are independent, the
    cotangent ``e_i`` placed in *every* sample of the sub-batch returns row
    ``i`` of *every* sample's Jacobian at once, so several samples share one
    forward and one vectorised backward.  Only input gradients are formed (the
    call runs under ``torch.no_grad`` outside the transform, so no autograd
    graph is recorded for the parameters).  The backward pass of ``D`` images
    is the floor for any exact method that propagates the ``D`` basis vectors
    (forward or reverse mode); on the 28x28 U-Net on CPU (chunks of 32 rows) it
    takes about 0.4x the time of one forward pass of a single batch of 784
    images and ~1x that of the same forward done in cache-sized batches (see
    ``benchmarks/bench_jacobian.py``; ``torch.func.vmap(jacrev)`` and the
    ``"expand"`` method below were measured 3.5x and 2x slower).

Alternative (``method="expand"``)
    Replicate each sample once per requested row, run one ordinary forward
    pass of that batch, and one ``torch.autograd.grad`` call with one-hot
    cotangents.  Exact too; it needs no vmap batching rules, so it is a
    fallback for models with operations that ``torch.func`` cannot vectorise,
    but it is slower (forward of ``D`` images with a recorded graph + backward).

Method ``"retain"`` (the default on CPU)
    Replicate each sample ``rows`` times (``rows`` about ``chunk_size``; see
    ``_retain_blocks``), run one ordinary forward pass of that small batch with
    a recorded graph, then call ``torch.autograd.grad`` once per block of
    ``rows`` Jacobian rows on the *same* graph (``retain_graph=True``), each
    with one-hot cotangents.  One forward of ``rows`` images per sample instead
    of ``D``; every backward is a plain batched backward (no vmap batching
    rules, no expanded copies of saved activations), so a ``channels_last``
    model keeps its layout in the backward pass.  When ``D_out`` is below
    ``chunk_size`` several samples share a pass, as with ``"vmap"``.

``method="auto"`` picks ``"retain"`` on CPU and ``"vmap"``
elsewhere (:func:`default_method`).  The fastest CPU configuration measured
(docs/benchmarks.md) is ``"retain"`` on a model put in
:func:`preferred_memory_format` (``channels_last``), in a process that called
``score_geometry.runtime.tune_allocator()``: 2.8-3.3x faster than the
row-by-row ``autograd.grad`` loop on the 28x28 U-Net at 2 threads, ~15 %
faster than ``"vmap"`` on the contiguous model.

The Jacobian is returned detached (it is an analysis quantity, not
differentiable).  ``f`` must be deterministic and per-sample: use ``model.eval()``
(no dropout, no batch-statistics BatchNorm).
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator, Optional

import torch
from torch.func import vjp, vmap

__all__ = ["batch_jacobian", "score_jacobian", "no_tf32", "default_chunk_size", "default_method",
           "preferred_memory_format"]

_METHODS = ("auto", "vmap", "expand", "retain")


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """Disable TF32 for CUDA matmuls and cuDNN convolutions inside the block.

    Sets ``torch.backends.cuda.matmul.allow_tf32 = False``,
    ``torch.backends.cudnn.allow_tf32 = False`` and the float32 matmul
    precision to ``"highest"``; the previous values are restored on exit
    (also when the block raises).  Use it around Jacobian computations that
    feed spectral analysis: TF32 has a 10-bit mantissa, which would corrupt the
    small singular values.
    """
    matmul_prev = torch.backends.cuda.matmul.allow_tf32
    cudnn_prev = torch.backends.cudnn.allow_tf32
    prec_prev = torch.get_float32_matmul_precision()
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul_prev
        torch.backends.cudnn.allow_tf32 = cudnn_prev
        torch.set_float32_matmul_precision(prec_prev)


# ----------------------------------------------------------------------------
# core
# ----------------------------------------------------------------------------

_IndexedFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_inputs(x: torch.Tensor, chunk_size: Optional[int], method: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"x must have shape (B, *S) with at least one feature dim, got {tuple(x.shape)}")
    if not (x.is_floating_point()):
        raise TypeError(f"x must be floating point, got {x.dtype}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")


#: Default rows per vectorised pass on CPU.  Small batches keep the activations
#: in cache: on the 28x28 U-Net (channels 32,64,64) a forward pass of 784 images
#: in batches of 32 is ~2.6x faster than one batch of 784, and the Jacobian with
#: chunks of 32 is ~3x faster than with one chunk of 784 (1 thread, AMD EPYC;
#: measured with glibc allocator defaults, so page faults as well as cache).
CPU_CHUNK_SIZE = 32


def default_chunk_size(device: torch.device, dim: int) -> int:
    """``chunk_size`` used when ``None`` is passed: ``dim`` (one full sample per
    pass) on accelerators, ``CPU_CHUNK_SIZE`` rows on CPU (several samples per
    pass when ``dim`` is smaller)."""
    if torch.device(device).type == "cpu":
        return CPU_CHUNK_SIZE
    return dim


def _output_dim(fn: _IndexedFn, x: torch.Tensor) -> int:
    with torch.no_grad():
        y = fn(x[:1], torch.zeros(1, dtype=torch.long, device=x.device))
    if y.shape[0] != 1:
        raise ValueError("f must preserve the batch dimension")
    return int(math.prod(y.shape[1:]))


def _sizes(fn: _IndexedFn, x: torch.Tensor, chunk_size: Optional[int]) -> tuple[int, int, int, int]:
    """Batch size, input dim, output dim and the effective chunk size."""
    D_out = _output_dim(fn, x)
    if chunk_size is None:
        chunk_size = default_chunk_size(x.device, D_out)
    return x.shape[0], int(math.prod(x.shape[1:])), D_out, chunk_size


def _jacobian_vmap(fn: _IndexedFn, x: torch.Tensor, chunk_size: Optional[int]) -> torch.Tensor:
    B, D_in, D_out, chunk_size = _sizes(fn, x, chunk_size)
    # A pass handles `group` samples x `rows` rows = at most chunk_size vjps.
    if chunk_size >= D_out:
        group, rows = max(1, chunk_size // D_out), D_out
    else:
        group, rows = 1, chunk_size
    eye = torch.eye(D_out, dtype=x.dtype, device=x.device)
    J = torch.empty(B, D_out, D_in, dtype=x.dtype, device=x.device)
    with torch.no_grad():
        for b0 in range(0, B, group):
            b1 = min(B, b0 + group)
            nb = b1 - b0
            idx = torch.arange(b0, b1, device=x.device)
            xs = x[b0:b1].detach()
            y, pullback = vjp(lambda z: fn(z, idx), xs)
            out_shape = y.shape  # (nb, *S_out)

            def row_vjp(e: torch.Tensor) -> torch.Tensor:
                # cotangent e (D_out,) replicated into every sample of the group
                return pullback(e.expand(nb, D_out).reshape(out_shape))[0]

            for r0 in range(0, D_out, rows):
                r1 = min(D_out, r0 + rows)
                g = vmap(row_vjp)(eye[r0:r1])  # (r, nb, *S)
                J[b0:b1, r0:r1] = g.reshape(r1 - r0, nb, D_in).transpose(0, 1)
    return J


def _jacobian_expand(fn: _IndexedFn, x: torch.Tensor, chunk_size: Optional[int]) -> torch.Tensor:
    B, D_in, D_out, chunk_size = _sizes(fn, x, chunk_size)
    total = B * D_out
    J = torch.empty(B, D_out, D_in, dtype=x.dtype, device=x.device)
    Jf = J.view(total, D_in)
    xd = x.detach()
    with torch.enable_grad():
        for u0 in range(0, total, chunk_size):
            u1 = min(total, u0 + chunk_size)
            units = torch.arange(u0, u1, device=x.device)
            b_idx = torch.div(units, D_out, rounding_mode="floor")
            r_idx = units - b_idx * D_out
            xr = xd[b_idx].clone().requires_grad_(True)
            y = fn(xr, b_idx)
            cot = torch.zeros(u1 - u0, D_out, dtype=y.dtype, device=y.device)
            cot[torch.arange(u1 - u0, device=x.device), r_idx] = 1
            g = _input_grad(y, xr, cot.view_as(y), retain_graph=False)
            Jf[u0:u1] = g.reshape(u1 - u0, D_in)
    return J


def _retain_blocks(D_out: int, chunk_size: int) -> int:
    """Rows per backward pass of the ``"retain"`` method: the largest divisor of ``D_out`` not above
    ``chunk_size`` when that is at least half of it (no padding: 28 for 784 and 32), else ``chunk_size``
    (the last block is padded with zero cotangents)."""
    div = max(d for d in range(1, min(D_out, chunk_size) + 1) if D_out % d == 0)
    return div if 2 * div >= min(D_out, chunk_size) else min(D_out, chunk_size)


def _jacobian_retain(fn: _IndexedFn, x: torch.Tensor, chunk_size: Optional[int]) -> torch.Tensor:
    B, D_in, D_out, chunk_size = _sizes(fn, x, chunk_size)
    if chunk_size >= D_out:  # several samples share one forward and one backward
        group, rows = max(1, chunk_size // D_out), D_out
    else:
        group, rows = 1, _retain_blocks(D_out, chunk_size)
    eye = torch.eye(D_out, dtype=x.dtype, device=x.device)
    J = torch.empty(B, D_out, D_in, dtype=x.dtype, device=x.device)
    with torch.enable_grad():
        for b0 in range(0, B, group):
            b1 = min(B, b0 + group)
            nb = b1 - b0
            idx = torch.arange(b0, b1, device=x.device).repeat_interleave(rows)
            xr = x[b0:b1].detach().repeat_interleave(rows, dim=0).requires_grad_(True)  # (nb * rows, *S)
            y = fn(xr, idx).reshape(nb, rows, D_out)
            for r0 in range(0, D_out, rows):
                r1 = min(D_out, r0 + rows)
                cot = torch.zeros(nb, rows, D_out, dtype=y.dtype, device=y.device)
                cot[:, : r1 - r0] = eye[r0:r1]
                g = _input_grad(y, xr, cot, retain_graph=r1 < D_out)
                J[b0:b1, r0:r1] = g.reshape(nb, rows, D_in)[:, : r1 - r0]
    return J


def _input_grad(y: torch.Tensor, x: torch.Tensor, cot: torch.Tensor, *, retain_graph: bool) -> torch.Tensor:
    """``cot``-weighted gradient of ``y`` with respect to ``x``; zeros where ``y`` does not depend on ``x``
    (as ``torch.func.vjp`` gives), instead of autograd's error."""
    if not y.requires_grad:
        return torch.zeros_like(x)
    (g,) = torch.autograd.grad(y, x, grad_outputs=cot, retain_graph=retain_graph, allow_unused=True)
    return torch.zeros_like(x) if g is None else g


def default_method(device: torch.device | str) -> str:
    """Method used for ``method="auto"``: ``"retain"`` on CPU, ``"vmap"`` on accelerators.

    On CPU the two are equally fast on a model in the default memory format, but only ``"retain"``
    keeps a ``channels_last`` model's layout through the backward pass (``vmap`` folds its batch
    dimension into a contiguous tensor), and with it the 28x28 U-Net's Jacobian is ~15 % faster
    (``benchmarks/bench_jacobian.py``, docs/benchmarks.md).  On CUDA ``"vmap"`` with one image per
    pass stays the default: no GPU has been available to compare the methods there.
    """
    return "retain" if torch.device(device).type == "cpu" else "vmap"


def preferred_memory_format(device: torch.device | str) -> torch.memory_format:
    """Memory format to put a convolutional model in before taking its Jacobians on ``device``:
    ``torch.channels_last`` on CPU (oneDNN's convolutions run up to 2x faster on NHWC tensors for
    some of the U-Net's layer shapes), ``torch.contiguous_format`` elsewhere (not measured on GPU).
    Apply it with ``model.to(memory_format=...)``; results are the same up to float rounding."""
    return torch.channels_last if torch.device(device).type == "cpu" else torch.contiguous_format


def _jacobian(fn: _IndexedFn, x: torch.Tensor, chunk_size: Optional[int], method: str) -> torch.Tensor:
    _check_inputs(x, chunk_size, method)
    if method == "auto":
        method = default_method(x.device)
    if method == "vmap":
        return _jacobian_vmap(fn, x, chunk_size)
    if method == "retain":
        return _jacobian_retain(fn, x, chunk_size)
    return _jacobian_expand(fn, x, chunk_size)


def batch_jacobian(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    chunk_size: Optional[int] = None,
    *,
    method: str = "auto",
) -> torch.Tensor:
    """Exact per-sample Jacobians of a batched, row-independent map.

    Parameters
    ----------
    f:
        Callable mapping a batch ``(n, *S)`` to ``(n, *S_out)`` where output row
        ``b`` depends only on input row ``b`` (it is called on sub-batches of
        ``x`` or on replicated samples).  Usually ``prod(S_out) == prod(S)``.
    x:
        ``(B, *S)`` floating tensor; the Jacobian has ``x``'s dtype and device.
    chunk_size:
        Upper bound on the number of vector-Jacobian products (Jacobian rows)
        evaluated in one vectorised pass, which bounds peak memory to roughly
        that of a forward+backward pass of ``chunk_size`` images.  ``None``
        uses :func:`default_chunk_size`: ``D`` (one full sample per pass) on
        CUDA, 32 on CPU (cache-friendly, fastest there).  If ``chunk_size >= D``,
        ``chunk_size // D`` samples share a pass; if smaller, each sample's
        rows are split into chunks.  Results do not depend on it (up to
        floating-point reassociation in the backend).
    method:
        ``"auto"`` (default: :func:`default_method`, ``"retain"`` on CPU,
        ``"vmap"`` on accelerators), ``"vmap"`` (``torch.func.vjp`` +
        ``vmap``), ``"retain"`` (one forward of about ``chunk_size`` replicas
        per sample, then one ``autograd.grad`` per block of rows on the
        retained graph) or ``"expand"`` (replicated batch + one
        ``torch.autograd.grad``).  All are exact; they differ in speed only.
        For speed on CPU, also put a convolutional ``f``'s module in
        :func:`preferred_memory_format` (``model.to(memory_format=...)``).

    Returns
    -------
    ``J`` of shape ``(B, D_out, D)`` with ``J[b, i, j] = d f(x)[b, i] / d x[b, j]``
    (flattened C-order indices), detached from the autograd graph.
    """
    return _jacobian(lambda z, idx: f(z), x, chunk_size, method)


def score_jacobian(
    score_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    t,
    *,
    chunk_size: Optional[int] = None,
    method: str = "auto",
) -> torch.Tensor:
    """Per-sample Jacobians ``d score_fn(x, t)[b] / d x[b]`` (``(B, D, D)``).

    ``score_fn(x, t)`` takes ``x`` of shape ``(n, *S)`` (e.g. ``(n, 1, 28, 28)``)
    and ``t`` of shape ``(n,)``.  ``t`` may be a Python float, a 0-d tensor or a
    ``(B,)`` tensor; it is broadcast per sample and sliced alongside ``x``
    (it is not differentiated).  See :func:`batch_jacobian` for ``chunk_size``
    and ``method``.
    """
    B = x.shape[0]
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.dim() == 0:
        t = t.expand(B)
    t = t.reshape(-1)
    if t.shape[0] != B:
        raise ValueError(f"t must be a scalar or have shape ({B},), got {tuple(t.shape)}")
    t = t.detach()
    return _jacobian(lambda z, idx: score_fn(z, t[idx]), x, chunk_size, method)
