"""Matrix-free spectra of one score Jacobian: the paper's measures without a D x D matrix.

``J = dg/dx`` (D x D, D = prod(S)) of a score model ``g(x, t)`` at one point is touched only through blocks of
products, each one batched call of the network on replicas of ``x`` (`JacobianProducts`):

* ``J V``: forward mode (`torch.func.jvp` on the batch of replicas), or, for networks without forward-mode
  rules, by differentiating a vector-Jacobian product (``products="double_backward"``; ``"auto"`` tries
  forward mode first);
* ``J^T U``: reverse mode (`torch.func.vjp`).

The network must be per-sample (no layer mixes the images of a batch: ``model.eval()``), as for the exact route.

From them `lowrank_spectrum` computes, in O(k D) memory:

* the on-manifold end of the SVD, ``s_1 <= ... <= s_k`` with ``u_i``, ``v_i``: the smallest eigenpairs of
  ``J^T J`` by a restarted block Krylov method with Rayleigh-Ritz (`smallest_eigenpairs`), then a final
  Rayleigh-Ritz on ``J`` itself in the found subspace (the SVD of ``J V``, so ``J v_i = s_i u_i`` holds to
  round-off; the subspace itself is converged to ``tol`` times the largest eigenvalue of ``J^T J``). ``k`` grows
  until every r_t asked for (the paper's floor and the own floor, at ``kappa`` and each of ``kappas``) is crossed
  by a witness, a singular value certified above the threshold by more than its residual, so the counts are not
  capped (an eigenvalue below the threshold that the Krylov space missed altogether would still be missed: with
  random starting blocks this has not been seen); where ``k_max`` stops the growth, or a count reaches the last
  computed rank, the spectrum says so (``capped``) and its r_t are lower bounds;
* the same for ``J~ = (J + J^T)/2``: its eigenpairs of smallest ``|lambda|`` (from ``J~^2``) and the extremes
  ``w_-``, ``w_+``;
* the own floor (`spectra.floor_ratio`: 1/(sigma^2 s) at rank ~3D/4, the calibration ratio) by stochastic
  Lanczos quadrature of ``J^T J`` on the complement of the found subspace, with an error bar (the probes'
  bootstrap and the quadrature's own error, `slq_quantile`). On a trained U-Net at D = 784 the floor is within
  0.21 % of the exact one, but the own floor's threshold sits in the dense off-manifold bulk, so that error moves
  the own-floor r_t by several ranks (docs/benchmarks.md); the paper's r_t does not depend on it;
* the skew share inside ``span(v_1..v_r)``: its r x r block exactly (``V^T J V = V^T U diag(s)``), over
  ``||H||_F^2`` (``H = (J - J^T)/2``) from Hutchinson's estimator, with a standard error.

Every returned triplet's residual ``||J^T u_i - s_i v_i||`` and eigenpair's ``||J~ w_i - lambda_i w_i||`` is kept
(relative to the largest singular value); ``n_products`` counts network passes (one per vector per product).
Shapes: ``x`` (*S) one image, ``t`` a float; arrays float64 numpy, vectors as columns (D, k).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Callable, Iterable, NamedTuple, Optional

import numpy as np
import torch

from ..jacobian import no_tf32
from ..spectra import SmallEndFeatures, local_dimension, subspace_overlap
from ..skew import skew_tolerance
from .routes import EXACT_MAX_DIM, ROUTES, choose_route  # noqa: F401 (re-exported)

__all__ = ["JacobianProducts", "LowRankSpectrum", "lowrank_spectrum", "smallest_eigenpairs", "slq_quantile",
           "ROUTES", "EXACT_MAX_DIM", "choose_route", "lowrank_at_times", "pack_spectra", "unpack_spectra",
           "is_packed"]


ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_PRODUCTS = ("auto", "forward", "double_backward")


class JacobianProducts:
    """Blocks of products with ``J = d score(x, t) / dx`` at one point, ``batch`` replicas per network call.

    Args:
        score: ``score(x, t)`` with ``x`` (n, *S) and ``t`` (n,), per-sample.
        x: (*S) the point (one image, no batch dimension); its dtype and device are the network's.
        t: the diffusion time.
        batch: vectors per network call (bounds memory to one forward + backward of ``batch`` images).
        products: how ``J V`` is formed: ``"forward"`` (forward-mode AD), ``"double_backward"`` (reverse mode
            twice) or ``"auto"`` (forward, falling back to double backward if the network has no forward-mode
            rule for one of its operations).
    """

    def __init__(self, score: ScoreFn, x: torch.Tensor, t: float, *, batch: int = 64, products: str = "auto"):
        if products not in _PRODUCTS:
            raise ValueError(f"products must be one of {_PRODUCTS}, got {products!r}")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.score, self.x, self.t = score, x.detach(), float(t)
        self.shape, self.D = tuple(x.shape), int(x.numel())
        self.batch, self.products = int(batch), products
        self.n_products = 0  # network passes: one per vector per product

    def _f(self, X: torch.Tensor) -> torch.Tensor:
        return self.score(X, torch.full((X.shape[0],), self.t, dtype=X.dtype, device=X.device))

    def _blocks(self, V: np.ndarray, product) -> np.ndarray:
        V = np.asarray(V, dtype=np.float64)
        if V.ndim != 2 or V.shape[0] != self.D:
            raise ValueError(f"expected a (D, k) block with D = {self.D}, got {V.shape}")
        out = np.empty_like(V)
        for a in range(0, V.shape[1], self.batch):
            cols = V[:, a:a + self.batch]
            tan = torch.as_tensor(np.ascontiguousarray(cols.T)).to(self.x.device, self.x.dtype)
            tan = tan.reshape(-1, *self.shape)
            X = self.x.expand(tan.shape[0], *self.shape).contiguous()
            with no_tf32():  # float32 products on CUDA, as the exact route's (TF32 would cost ~1e-3 relative)
                out[:, a:a + self.batch] = product(X, tan).reshape(tan.shape[0], -1).double().cpu().numpy().T
            self.n_products += cols.shape[1]
        return out

    def _jvp_forward(self, X, tan):
        with torch.no_grad(), warnings.catch_warnings():
            # torch 2.14's forward mode scripts a helper on first use and warns that jit.script is deprecated
            warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
            return torch.func.jvp(self._f, (X,), (tan,))[1]

    def _jvp_double_backward(self, X, tan):
        with torch.enable_grad():
            Xr = X.clone().requires_grad_(True)
            Y = self._f(Xr)
            cot = torch.zeros_like(Y, requires_grad=True)
            (g,) = torch.autograd.grad(Y, Xr, cot, create_graph=True)
            (jv,) = torch.autograd.grad(g, cot, tan)
        return jv.detach()

    def _jvp(self, X, tan):
        if self.products == "auto":
            try:
                out = self._jvp_forward(X, tan)
                self.products = "forward"
                return out
            except (RuntimeError, NotImplementedError):  # an operation without a forward-mode rule
                self.products = "double_backward"
        return (self._jvp_forward if self.products == "forward" else self._jvp_double_backward)(X, tan)

    def _vjp(self, X, cot):
        with torch.no_grad():
            return torch.func.vjp(self._f, X)[1](cot)[0]

    def jv(self, V: np.ndarray) -> np.ndarray:
        """``J V`` for a (D, k) block."""
        return self._blocks(V, self._jvp)

    def jtu(self, U: np.ndarray) -> np.ndarray:
        """``J^T U`` for a (D, k) block."""
        return self._blocks(U, self._vjp)

    def gram(self, V: np.ndarray) -> np.ndarray:
        """``J^T J V``."""
        return self.jtu(self.jv(V))

    def sym(self, V: np.ndarray) -> np.ndarray:
        """``J~ V = (J V + J^T V) / 2``."""
        return 0.5 * (self.jv(V) + self.jtu(V))


# ----------------------------------------------------------------------------
# the eigensolver and the quadrature (maths on operators, no network)
# ----------------------------------------------------------------------------


def _orth(W: np.ndarray, Q: Optional[np.ndarray] = None, rtol: float = 1e-10) -> np.ndarray:
    """Orthonormal columns spanning W's part orthogonal to Q (projected twice; directions below ``rtol`` of W's
    largest column are dropped)."""
    scale = max(float(np.linalg.norm(W, axis=0).max(initial=0.0)), 1e-300)
    for _ in range(2):
        if Q is not None and Q.shape[1]:
            W = W - Q @ (Q.T @ W)
    if W.shape[1] == 0:
        return W
    Qw, R = np.linalg.qr(W)
    if np.all(np.abs(np.diag(R)) > rtol * scale):  # the common case: W has full column rank
        return Qw
    U, s, _ = np.linalg.svd(W, full_matrices=False)  # rank-deficient (the space is filling up): keep its range
    return U[:, s > rtol * scale]


def _power_top(apply: Callable[[np.ndarray], np.ndarray], D: int, rng: np.random.Generator,
               iters: int = 12) -> tuple[float, np.ndarray]:
    """The top Ritz pair of a 4-column power block of a PSD M: its value (a lower estimate of the largest
    eigenvalue) and vector (D,)."""
    Q = _orth(rng.standard_normal((D, min(4, D))))
    for _ in range(iters):
        Q = _orth(apply(Q))
    MQ = apply(Q)
    theta, Z = np.linalg.eigh(0.5 * (Q.T @ MQ + MQ.T @ Q))
    return float(theta[-1]), Q @ Z[:, -1]


def _power_max(apply: Callable[[np.ndarray], np.ndarray], D: int, rng: np.random.Generator, iters: int = 12) -> float:
    """An estimate (from below, Rayleigh-Ritz on a 4-column power block) of the largest eigenvalue of a PSD M."""
    return _power_top(apply, D, rng, iters)[0]


class Eigenpairs(NamedTuple):
    """`smallest_eigenpairs`' result: ``values`` (n,) ascending, ``vectors`` (D, n) orthonormal, ``residual`` (n,)
    relative to the operator's largest eigenvalue, ``capped`` (k_max or D stopped the growth before ``want`` was
    met) and ``converged`` (False where the cycles ran out first)."""

    values: np.ndarray
    vectors: np.ndarray
    residual: np.ndarray
    capped: bool
    converged: bool


def smallest_eigenpairs(apply: Callable[[np.ndarray], np.ndarray], D: int, want: Callable[[np.ndarray], Any], *,
                        k0: int = 32, k_max: int = 1024, depth: int = 3, tol: float = 1e-6,
                        witness_tol: Optional[float] = None, X0: Optional[np.ndarray] = None,
                        max_restarts: int = 40, converge_capped: bool = True, seed: int = 0) -> Eigenpairs:
    """The smallest eigenpairs of a symmetric positive semi-definite operator, matrix-free.

    Restarted block Krylov with Rayleigh-Ritz on ``c I - M`` (``c`` from a power iteration): each cycle spans
    ``[X, (cI - M) X, ..., (cI - M)^depth X]`` from the current block X (``b`` columns: the previous cycle's best
    Ritz vectors), and stops once the ``n = want(ritz values)`` smallest Ritz pairs all have residual
    ``||M y - lambda y|| <= tol * c``. ``want`` sees the current Ritz values (ascending) and returns how many
    smallest pairs are needed, or ``(n, threshold)``: then the last of them is a witness, the first value above
    the threshold, which only needs ``witness_tol`` (its value converges fast even inside a cluster where its
    vector does not) but must lie above the threshold by more than its residual (``lambda_n - r_n c >
    threshold``: the witness's eigenvalue is certified above it); the block grows (doubling, to at least ``n + n/4 + 8``) while ``n`` exceeds it,
    up to ``k_max``.

    Args:
        apply: ``M V`` for a (D, b) block.
        want: Ritz values (ascending) -> number of smallest pairs needed (>= 1), or (that number, threshold).
        X0: (D, j) starting vectors (e.g. an earlier call's), completed with random columns to the block size.
        converge_capped: where ``want`` exceeds ``k_max``, converge the ``k_max`` smallest pairs before returning
            them (True), or return unconverged as soon as a block of ``k_max`` vectors still wants more (False:
            for a caller with another way).

    Returns:
        `Eigenpairs` (values, vectors, residual relative to ``c``, capped: True where ``k_max`` (or D) stopped the
        growth before ``want`` was met, then n = k_max; converged: False, with a RuntimeWarning, where
        ``max_restarts`` cycles ended first).
    """
    rng = np.random.default_rng(seed)
    witness_tol = tol if witness_tol is None else max(witness_tol, tol)
    c = 1.01 * _power_max(apply, D, rng) + 1e-300

    def wanted(lam):
        got = want(lam)
        n, thr = (got if isinstance(got, tuple) else (got, None))
        return max(1, int(n)), thr

    def converged(lam, res, n, thr):
        if n > res.shape[0] or not (np.all(res[:n - 1] <= tol) and res[n - 1] <= witness_tol):
            return False
        return thr is None or lam[n - 1] - res[n - 1] * c > thr

    b = min(max(int(k0), 1, 0 if X0 is None else X0.shape[1]), D)
    X = rng.standard_normal((D, b))
    if X0 is not None:
        X[:, :X0.shape[1]] = X0
    lam = Y = res = None
    n = 1
    for _ in range(max_restarts):
        blocks, images = [], []
        Q = _orth(X)
        for j in range(depth + 1):
            BQ = c * Q - apply(Q)
            blocks.append(Q)
            images.append(BQ)
            basis = np.hstack(blocks)
            if j == depth or basis.shape[1] >= D:
                break
            Q = _orth(BQ, basis)
            if Q.shape[1] == 0:
                break
        Qall, BQall = np.hstack(blocks), np.hstack(images)
        T = Qall.T @ BQall
        theta, Z = np.linalg.eigh(0.5 * (T + T.T))
        theta, Z = theta[::-1], Z[:, ::-1]  # largest of cI - M first = smallest of M
        lam = c - theta
        Y = Qall @ Z
        res = np.linalg.norm(BQall @ Z - Y * theta, axis=0) / c
        n, thr = wanted(lam)
        full = Qall.shape[1] >= D
        if n > min(k_max, D):
            n_cap = min(k_max, D)
            if not converge_capped and b >= n_cap:  # a block as large as the cap still wants more
                return Eigenpairs(lam[:n_cap], Y[:, :n_cap], res[:n_cap], True, False)
            if b >= min(n_cap + max(n_cap // 4, 8), D) and np.all(res[:n_cap] <= tol):
                return Eigenpairs(lam[:n_cap], Y[:, :n_cap], res[:n_cap], True, True)
        elif converged(lam, res, n, thr) or full:
            return Eigenpairs(lam[:n], Y[:, :n], res[:n], False, True)
        need = min(max(n, 1), min(k_max, D))
        if need + max(need // 4, 8) > b:  # grow geometrically: a few restarts, not one per newly found rank
            b = min(max(2 * b, need + max(need // 4, 8)), D)
        keep = min(b, Y.shape[1])
        X = np.hstack([Y[:, :keep], rng.standard_normal((D, b - keep))]) if keep < b else Y[:, :b]
    n = min(n, min(k_max, D), Y.shape[1])
    warnings.warn(f"smallest_eigenpairs: not converged after {max_restarts} cycles (largest residual of the {n} "
                  f"pairs returned: {float(res[:n].max()):.2g}, tol {tol:g}); raise max_restarts or depth",
                  RuntimeWarning, stacklevel=2)
    return Eigenpairs(lam[:n], Y[:, :n], res[:n], n < wanted(lam)[0], False)


def slq_quantile(apply: Callable[[np.ndarray], np.ndarray], D: int, q: float, *, deflate: Optional[np.ndarray] = None,
                 probes: int = 16, steps: int = 40, bootstrap: int = 200, seed: int = 0) -> tuple[float, float]:
    """The ``q``-quantile of the eigenvalues of a symmetric M on the complement of ``deflate``'s columns, by
    stochastic Lanczos quadrature: ``probes`` Rademacher vectors (projected off ``deflate``), ``steps`` Lanczos
    steps each (all probes in one batched product per step, full reorthogonalisation), the pooled Gauss
    quadrature measure, its CDF (each atom at the middle of its jump) linearly interpolated between nodes. Returns
    (quantile, its error): the bootstrap standard error over probes and, in quadrature, the quadrature's own
    error, estimated as the change from half the steps to all of them (measured on a trained U-Net at D = 784,
    the quantile's error is mostly the latter: docs/benchmarks.md)."""
    rng = np.random.default_rng(seed)
    P = deflate if deflate is not None and deflate.shape[1] else None

    def proj(V):
        return V - P @ (P.T @ V) if P is not None else V

    Z = proj(rng.choice([-1.0, 1.0], size=(D, probes)))
    Qs = [Z / np.linalg.norm(Z, axis=0)]
    alphas, betas = [], []
    m = min(steps, D - (0 if P is None else P.shape[1]))
    for j in range(m):
        W = proj(apply(Qs[-1]))
        a = np.sum(W * Qs[-1], axis=0)
        alphas.append(a)
        W = W - Qs[-1] * a - (Qs[-2] * betas[-1] if j else 0.0)
        Qst = np.stack(Qs, axis=0)  # (j+1, D, probes): full reorthogonalisation, probe by probe
        for _ in range(2):
            W = W - np.einsum("jdp,jp->dp", Qst, np.einsum("jdp,dp->jp", Qst, W))
        bnorm = np.linalg.norm(W, axis=0)
        if j == m - 1 or np.any(bnorm <= 1e-12 * np.abs(a).max(initial=1.0)):
            break
        betas.append(bnorm)
        Qs.append(W / bnorm)
    def gauss(n_steps):  # each probe's Gauss quadrature from its first n_steps Lanczos coefficients
        out = []
        for p in range(probes):
            a = np.array([al[p] for al in alphas[:n_steps]])
            b = np.array([be[p] for be in betas[:len(a) - 1]])
            th, V = np.linalg.eigh(np.diag(a) + np.diag(b, 1) + np.diag(b, -1))
            out.append((th, V[0] ** 2))
        return out

    def quantile(rules, idx):
        th = np.concatenate([rules[i][0] for i in idx])
        w = np.concatenate([rules[i][1] for i in idx])
        order = np.argsort(th)
        w = w[order] / w.sum()
        th, cdf = th[order], np.cumsum(w) - 0.5 * w  # each atom at the middle of its jump: no half-atom bias
        return float(np.interp(q, cdf, th))

    full = gauss(len(alphas))
    est = quantile(full, range(probes))
    boot = [quantile(full, rng.integers(0, probes, probes)) for _ in range(bootstrap)]
    # the quadrature's own error, common to every probe (the bootstrap cannot see it): the change from half the
    # steps (the same Lanczos run's leading coefficients, no extra products) to all of them
    quad = abs(est - quantile(gauss(max(1, len(alphas) // 2)), range(probes)))
    return est, float(np.hypot(np.std(boot), quad))


# ----------------------------------------------------------------------------
# the spectrum of one Jacobian
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class LowRankSpectrum(SmallEndFeatures):
    """The computed part of one score Jacobian's spectra (conventions of `spectra.Spectrum`; k computed ranks).

    ``singular_values`` (k,) ascending, ``u``, ``v`` (D, k), ``cos_uv`` (k,), ``residual_uv`` (k,):
    ``||J^T u_i - s_i v_i|| / s_max``. ``eigvals`` (k,) of ``J~`` by ``|lambda|`` ascending, ``w`` (D, k),
    ``residual_w`` (k,); ``eig_min``/``eig_max`` with ``w_minus``/``w_plus`` (D,): the extremes. ``s_max`` with
    ``u_plus``, ``v_plus`` (D,): the top Ritz triplet of a power block (``s_max`` from below; the vectors lie in
    the top, off-manifold cluster, where the exact route's top pair is arbitrary too).
    ``local_dim``/``local_dim_own_floor``: r_t against (1 + kappa) sigma^2 and (1 + kappa) c sigma^2 with
    ``c = floor_ratio`` (± ``floor_ratio_se``); ``sweep``: {kappa: (paper's r_t, own floor's r_t)} for
    ``kappas``. ``capped``: k_max stopped the growth before the largest threshold was crossed, so every r_t
    not below k is a lower bound. ``skew_share_inside`` (± ``skew_share_inside_se``): ``||P H P||^2 / ||H||^2``
    with P on ``span(v_1..v_r)``, NaN where J is symmetric to round-off; ``skew_h2`` (± ``skew_h2_se``): the
    Hutchinson estimate of ``||H||_F^2`` (0 where J is symmetric to ``skew_tol``), for the share at any r
    (`skew_share_inside_at`). ``trace`` (± ``trace_se``) and
    ``asymmetry`` (``||J - J^T||_F / ||J||_F``, as `spectra.Spectrum`'s): Hutchinson estimates from the same
    probes. ``converged``: every eigensolve met its tolerance (False: a RuntimeWarning said which did not).
    ``n_products``: network passes.
    """

    singular_values: np.ndarray
    u: np.ndarray
    v: np.ndarray
    cos_uv: np.ndarray
    residual_uv: np.ndarray
    eigvals: np.ndarray
    w: np.ndarray
    residual_w: np.ndarray
    eig_min: float
    eig_max: float
    w_minus: np.ndarray
    w_plus: np.ndarray
    s_max: float
    u_plus: np.ndarray
    v_plus: np.ndarray
    skew_h2: float
    skew_h2_se: float
    skew_tol: float
    sigma: float
    kappa: float
    local_dim: int
    local_dim_own_floor: int
    floor_ratio: float
    floor_ratio_se: float
    sweep: dict
    capped: bool
    skew_share_inside: float
    skew_share_inside_se: float
    trace: float
    trace_se: float
    asymmetry: float
    converged: bool
    n_products: int

    @property
    def dim(self) -> int:
        return int(self.u.shape[0])

    @property
    def rank(self) -> int:
        """k, the number of computed singular triplets."""
        return int(self.singular_values.shape[0])

    def skew_share_inside_at(self, r: int) -> float:
        """``||P H P||_F^2 / ||H||_F^2`` with P on ``span(v_1..v_r)`` for any ``1 <= r <= k`` (the r x r block
        ``V_r^T J V_r = V_r^T U_r diag(s_r)`` exactly, over ``skew_h2``); 0 for r = 0 (as the exact route's
        `skew.skew_shares`); NaN for r outside 0..k or a field symmetric to round-off."""
        if not (0 <= r <= self.rank and self.skew_h2 > 0):
            return math.nan
        if r == 0:
            return 0.0
        block = self.v[:, :r].T @ (self.u[:, :r] * self.singular_values[:r])
        return float(np.sum((0.5 * (block - block.T)) ** 2)) / self.skew_h2

    def overlaps(self) -> dict[str, np.ndarray]:
        """Eq. 2's Phi_n^{u,v}, Phi_n^{u,w}, Phi_n^{v,w} for n <= k (`spectra.overlaps` on the computed part)."""
        return {"uv": subspace_overlap(self.u, self.v), "uw": subspace_overlap(self.u, self.w),
                "vw": subspace_overlap(self.v, self.w)}


def _floor_rank(D: int) -> float:
    """The ascending (0-based) rank whose 1/s is `spectra.floor_ratio`'s median of the top half of ranks."""
    return D // 2 + (D - D // 2 - 1) / 2


def _extremes(ops: JacobianProducts, bound: float, *, tol: float, seed: int) -> tuple[float, float, np.ndarray,
                                                                                  np.ndarray, bool]:
    """The most negative and most positive eigenpairs of J~ (``|lambda| <= bound``): the smallest eigenpair of the
    positive semi-definite ``bound I + J~`` and of ``bound I - J~``; and whether both converged."""
    out = []
    for sign in (1.0, -1.0):
        lam, W, res, _, ok = smallest_eigenpairs(lambda B, g=sign: bound * B + g * ops.sym(B), ops.D, lambda _l: 1,
                                                 k0=8, k_max=1, depth=8, tol=tol, seed=seed)
        out.append((sign * (float(lam[0]) - bound), W[:, 0], ok))
    (lo, w_lo, ok_lo), (hi, w_hi, ok_hi) = out
    return lo, hi, w_lo, w_hi, ok_lo and ok_hi


def _smallest_abs_count(n: int, bound: float) -> Callable[[np.ndarray], int]:
    """`smallest_eigenpairs`' ``want`` for the n eigenvalues of J~ of smallest |lambda|, found among its largest
    algebraic ones (Ritz values of ``bound I - J~``, ascending): the least m whose m-th value lambda_m < 0 has
    the n smallest |lambda| of the first m below |lambda_m| (every eigenvalue not yet found is below lambda_m),
    plus that m-th as the witness."""
    def want(ritz: np.ndarray) -> int:
        lam = bound - np.asarray(ritz)
        for m in range(n, lam.shape[0] + 1):
            if lam[m - 1] < 0 and np.sort(np.abs(lam[:m]))[n - 1] < -lam[m - 1]:
                return m
        return lam.shape[0] + 1
    return want


def lowrank_spectrum(score: ScoreFn, x: torch.Tensor, t: float, sigma: float, kappa: float = 0.1, *,
                     kappas: Iterable[float] = (), k0: int = 32, k_max: int = 1024, tol: float = 1e-6,
                     depth: int = 3, batch: int = 64, products: str = "auto", probes: int = 16,
                     slq_steps: int = 80, skew_probes: int = 64, skew_tol: Optional[float] = None,
                     seed: int = 0) -> LowRankSpectrum:
    """The paper's measures of ``J = d score(x, t)/dx`` at one point without forming J (module docstring).

    Args:
        score: ``score(x, t)``, x (n, *S), t (n,); per-sample.
        x: (*S) the point; t: its time; sigma: sigma_t; kappa: the slack of r_t.
        kappas: further slacks whose r_t (both floors) must also be exact: k grows until all are crossed.
        k0, k_max: first and largest number of singular triplets; tol: residual tolerance of the eigensolver
            (relative to the largest eigenvalue of J^T J); depth: Krylov blocks per cycle; batch: vectors per
            network call; products: how J V is formed (`JacobianProducts`).
        probes, slq_steps: the floor's stochastic Lanczos quadrature; skew_probes: Hutchinson probes of ||H||_F^2;
        skew_tol: ||H||_F / ||J||_F at or below it is round-off (None: `skew.skew_tolerance` of x's dtype).
    """
    sigma = float(sigma)
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    ops = JacobianProducts(score, x, t, batch=batch, products=products)
    D = ops.D
    ks = sorted({float(kappa), *map(float, kappas)})
    floor_idx = _floor_rank(D)
    state = {"c": 1.0}

    def want(lam):
        s = np.sqrt(np.clip(lam, 0.0, None))
        # r_t against each floor at the smallest slack must be crossed; the own floor c is re-estimated from
        # the Ritz values where they reach its rank, and is otherwise taken as at most 1 (the paper's floor)
        thr = 1.0 / ((1.0 + ks[0]) * sigma**2 * min(1.0, state["c"]))
        return int(np.searchsorted(s, thr, side="right")) + 1, thr**2  # the witness certified above thr

    opts = dict(k_max=k_max, depth=depth, tol=tol, witness_tol=1e-3, seed=seed)
    lam, V, _, capped, converged = smallest_eigenpairs(ops.gram, D, want, k0=k0, **opts)

    # the floor: exact where the found part reaches its rank, else SLQ on the complement
    rng = np.random.default_rng(seed + 1)
    if floor_idx <= lam.shape[0] - 1:
        s_floor, s_floor_se = float(np.sqrt(np.interp(floor_idx, np.arange(lam.shape[0]), lam))), 0.0
    else:
        q = (floor_idx - V.shape[1] + 0.5) / (D - V.shape[1])
        lq, lq_se = slq_quantile(ops.gram, D, q, deflate=V, probes=probes, steps=slq_steps, seed=seed + 2)
        s_floor = math.sqrt(max(lq, 0.0))
        s_floor_se = 0.5 * lq_se / max(s_floor, 1e-300)
    c = 1.0 / (sigma**2 * s_floor) if s_floor > 0 else math.inf
    c_se = c * s_floor_se / s_floor if s_floor > 0 else math.nan
    if np.isfinite(c) and c < state["c"] and not capped:  # a low floor moves the own threshold up: grow k
        state["c"] = c
        lam, V, _, capped, converged = smallest_eigenpairs(ops.gram, D, want, k0=k0, **opts)  # (warm start: slower)

    # final Rayleigh-Ritz on J itself: the SVD of J V gives the triplets (J v_i = s_i u_i to round-off)
    JV = ops.jv(V)
    Ut, s, Zh = np.linalg.svd(JV, full_matrices=False)
    order = np.argsort(s)
    s, u, v = s[order], Ut[:, order], V @ Zh.T[:, order]
    res_uv = np.linalg.norm(ops.jtu(u) - v * s, axis=0)
    # the top of the spectrum: a Ritz vector of a power block, in the off-manifold cluster (u_+, v_+ of Fig. 2)
    lam_top, v_plus = _power_top(ops.gram, D, rng, iters=6)
    s_max = math.sqrt(max(lam_top, 0.0)) or 1.0
    u_plus = ops.jv(v_plus[:, None])[:, 0]
    u_plus = u_plus / (np.linalg.norm(u_plus) or 1.0)
    res_uv = res_uv / s_max

    # J~: its n_w eigenpairs of smallest |lambda|, as the largest algebraic ones of J~ (the smallest of the
    # positive semi-definite bound I - J~: two products per vector, the spectrum not squared), as many as it
    # takes for the n_w smallest |lambda| among them to be below |the last one| < 0 (every one not found is
    # more negative still), up to 2 n_w + 64 of them; where J~ has more positive eigenvalues than that, the
    # smallest eigenpairs of J~^2 instead (four products per vector); then Rayleigh-Ritz on J~ in that span,
    # ordered by |lambda|
    n_w = V.shape[1]
    bound = 1.01 * s_max
    lw, W, _, capped_w, converged_w = smallest_eigenpairs(
        lambda B: bound * B - ops.sym(B), D, _smallest_abs_count(n_w, bound), k0=n_w + 8,
        k_max=min(D, 2 * n_w + 64), depth=depth, tol=tol, witness_tol=1e-3, converge_capped=False, seed=seed + 3)
    if capped_w:  # more positive eigenvalues than that (an expanding field, e.g. an untrained net): from J~^2
        lw, W, _, _, converged_w = smallest_eigenpairs(lambda B: ops.sym(ops.sym(B)), D, lambda _l: n_w,
                                                       k0=n_w + 8, k_max=n_w, depth=depth, tol=tol, seed=seed + 3)
    SW = ops.sym(W)
    lw, Zw = np.linalg.eigh(0.5 * (W.T @ SW + SW.T @ W))
    ow = np.argsort(np.abs(lw), kind="stable")[:n_w]
    lw, w = lw[ow], W @ Zw[:, ow]
    res_w = np.linalg.norm(SW @ Zw[:, ow] - w * lw, axis=0) / s_max
    eig_min, eig_max, w_minus, w_plus, converged_ext = _extremes(ops, 1.01 * s_max, tol=max(tol, 1e-4), seed=seed + 4)

    def ranks(k):
        paper = local_dimension(s, sigma, k)
        own = local_dimension(s, sigma * math.sqrt(c), k) if np.isfinite(c) and c > 0 else 0
        return int(paper), int(own)

    r, r_own = ranks(kappa)
    sweep = {k: ranks(k) for k in ks}
    # a count that reaches the last computed rank has no witness above it after the final Rayleigh-Ritz: a bound
    capped = bool(capped or max(max(v) for v in sweep.values()) >= s.shape[0])

    # the skew share inside span(v_1..v_r): the block exactly, ||H||_F^2 by Hutchinson
    if skew_tol is None:
        skew_tol = skew_tolerance(x)
    Zp = rng.choice([-1.0, 1.0], size=(D, skew_probes))
    Jz, Jtz = ops.jv(Zp), ops.jtu(Zp)
    h2 = np.sum((0.5 * (Jz - Jtz)) ** 2, axis=0)
    j2 = np.sum(Jz**2, axis=0)
    H2, H2_se, J2 = float(h2.mean()), float(h2.std(ddof=1) / math.sqrt(skew_probes)), float(j2.mean())
    tr = np.sum(Zp * Jz, axis=0)
    block = v[:, :r].T @ (u[:, :r] * s[:r])
    inside = float(np.sum((0.5 * (block - block.T)) ** 2))
    h2_share = H2 if H2 > (skew_tol**2) * J2 else 0.0  # symmetric to round-off: no share at any r
    share = inside / h2_share if h2_share > 0 else math.nan
    share_se = share * H2_se / h2_share if h2_share > 0 else math.nan

    return LowRankSpectrum(
        singular_values=s, u=u, v=v, cos_uv=np.sum(u * v, axis=0), residual_uv=res_uv, eigvals=lw, w=w,
        residual_w=res_w, eig_min=eig_min, eig_max=eig_max, w_minus=w_minus, w_plus=w_plus, s_max=s_max,
        u_plus=u_plus, v_plus=v_plus, skew_h2=h2_share, skew_h2_se=H2_se, skew_tol=float(skew_tol), sigma=sigma,
        kappa=float(kappa), local_dim=r, local_dim_own_floor=r_own, floor_ratio=float(c), floor_ratio_se=float(c_se),
        sweep=sweep, capped=capped, skew_share_inside=share,
        skew_share_inside_se=share_se, trace=float(tr.mean()), trace_se=float(tr.std(ddof=1) / math.sqrt(skew_probes)),
        asymmetry=2.0 * math.sqrt(H2 / J2) if J2 > 0 else 0.0, converged=bool(converged and converged_w and converged_ext),
        n_products=ops.n_products)


def lowrank_at_times(score: ScoreFn, x_t: np.ndarray, t, sigma, kappa: float = 0.1, *, device="cpu",
                     dtype: torch.dtype = torch.float32, progress: bool = True, **options) -> list[list[LowRankSpectrum]]:
    """`lowrank_spectrum` at every (image, t): ``x_t`` (n, T, *S) (S = (C, H, W), or (H, W) for one channel),
    ``t`` and ``sigma`` (T,). Returns spectra[i][j]. ``options`` go to `lowrank_spectrum`."""
    from tqdm.auto import tqdm

    n, n_t = x_t.shape[:2]
    shape = (1, *x_t.shape[2:]) if x_t.ndim == 4 else tuple(x_t.shape[2:])
    out = []
    with tqdm(total=n * n_t, desc="lowrank spectra", disable=not progress, mininterval=5) as bar:
        for i in range(n):
            row = []
            for j in range(n_t):
                x = torch.as_tensor(x_t[i, j], dtype=dtype, device=device).reshape(shape)
                row.append(lowrank_spectrum(score, x, float(t[j]), float(sigma[j]), kappa, **options))
                bar.update(1)
            out.append(row)
    return out


# ----------------------------------------------------------------------------
# many spectra as arrays (what the Jacobian stage writes instead of D x D matrices)
# ----------------------------------------------------------------------------

#: `LowRankSpectrum`'s fields by kind: per computed rank (n, T, K), vectors per rank (n, T, D, K), one vector
#: per point (n, T, D) and scalars (n, T); K is the largest k of the block, shorter spectra padded with NaN.
_PER_RANK = ("singular_values", "cos_uv", "residual_uv", "eigvals", "residual_w")
_RANK_VECTORS = ("u", "v", "w")
_VECTORS = ("w_minus", "w_plus", "u_plus", "v_plus")
_SCALARS = ("eig_min", "eig_max", "s_max", "skew_h2", "skew_h2_se", "skew_tol", "kappa", "local_dim",
            "local_dim_own_floor", "floor_ratio", "floor_ratio_se", "capped", "skew_share_inside",
            "skew_share_inside_se", "trace", "trace_se", "asymmetry", "converged", "n_products")
_INTEGER = ("local_dim", "local_dim_own_floor", "n_products")
_BOOLEAN = ("capped", "converged")
#: The dataset that tells a file of packed spectra (`pack_spectra`) from one of D x D Jacobians (``J``).
PACKED_KEY = "lowrank_k"


def pack_spectra(spectra: list[list[LowRankSpectrum]]) -> dict[str, np.ndarray]:
    """``spectra[i][j]`` (n images x T times, `lowrank_at_times`) as arrays, O(n T k D): the singular triplets and
    eigenpairs (``u``, ``v``, ``w`` (n, T, D, K) float32, the rest float64), ``lowrank_k`` (n, T) each spectrum's
    k, ``sweep_kappas`` (S,) and ``sweep_ranks`` (n, T, S, 2) (the paper's and the own floor's r_t per kappa).
    `unpack_spectra` inverts it (vectors to float32 round-off)."""
    flat = [s for row in spectra for s in row]
    if not flat:
        raise ValueError("no spectra to pack")
    n, n_t = len(spectra), len(spectra[0])
    K, D = max(s.rank for s in flat), flat[0].dim
    kappas = sorted(flat[0].sweep)
    if any(sorted(s.sweep) != kappas for s in flat):
        raise ValueError("every spectrum must have been computed at the same kappas")
    sigma = np.array([s.sigma for s in spectra[0]], dtype=np.float64)
    if any(not np.allclose([s.sigma for s in row], sigma, rtol=1e-12, atol=0) for row in spectra):
        raise ValueError("every image's spectra must be at the same times (sigma)")
    out: dict[str, np.ndarray] = {PACKED_KEY: np.zeros((n, n_t), dtype=np.int64), "sigma": sigma,
                                  "sweep_kappas": np.asarray(kappas, dtype=np.float64),
                                  "sweep_ranks": np.zeros((n, n_t, len(kappas), 2), dtype=np.int64)}
    out |= {f: np.full((n, n_t, K), np.nan) for f in _PER_RANK}
    out |= {f: np.full((n, n_t, D, K), np.nan, dtype=np.float32) for f in _RANK_VECTORS}
    out |= {f: np.empty((n, n_t, D), dtype=np.float32) for f in _VECTORS}
    out |= {f: np.empty((n, n_t), dtype=np.int64 if f in _INTEGER else bool if f in _BOOLEAN else np.float64)
            for f in _SCALARS}
    for i, row in enumerate(spectra):
        if len(row) != n_t:
            raise ValueError("every image needs a spectrum at every time")
        for j, s in enumerate(row):
            k = s.rank
            out[PACKED_KEY][i, j] = k
            out["sweep_ranks"][i, j] = [s.sweep[kappa] for kappa in kappas]
            for f in _PER_RANK:
                out[f][i, j, :k] = getattr(s, f)
            for f in _RANK_VECTORS:
                out[f][i, j, :, :k] = getattr(s, f)
            for f in _VECTORS:
                out[f][i, j] = getattr(s, f)
            for f in _SCALARS:
                out[f][i, j] = getattr(s, f)
    return out


def is_packed(datasets) -> bool:
    """Whether a Jacobian stage's datasets are packed matrix-free spectra (`pack_spectra`) rather than ``J``."""
    return PACKED_KEY in datasets


def unpack_spectra(datasets) -> list[list[LowRankSpectrum]]:
    """`pack_spectra`'s arrays (e.g. read back from HDF5) as ``spectra[i][j]``."""
    ks = np.asarray(datasets[PACKED_KEY])
    kappas = [float(k) for k in np.asarray(datasets["sweep_kappas"])]
    out = []
    for i in range(ks.shape[0]):
        row = []
        for j in range(ks.shape[1]):
            k = int(ks[i, j])
            fields = {f: np.asarray(datasets[f][i, j, :k], dtype=np.float64) for f in _PER_RANK}
            fields |= {f: np.asarray(datasets[f][i, j, :, :k], dtype=np.float64) for f in _RANK_VECTORS}
            fields |= {f: np.asarray(datasets[f][i, j], dtype=np.float64) for f in _VECTORS}
            for f in _SCALARS:
                value = datasets[f][i, j]
                fields[f] = int(value) if f in _INTEGER else bool(value) if f in _BOOLEAN else float(value)
            fields["sigma"] = float(datasets["sigma"][j])
            ranks = np.asarray(datasets["sweep_ranks"][i, j])
            fields["sweep"] = {kappa: (int(ranks[a, 0]), int(ranks[a, 1])) for a, kappa in enumerate(kappas)}
            row.append(LowRankSpectrum(**fields))
        out.append(row)
    return out
