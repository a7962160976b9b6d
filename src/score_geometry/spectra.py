"""Spectral analysis of one score Jacobian (Wenliang & Moran, §2-§3, App. C).

Conventions (as in the paper):

* singular values are in **ascending** order, ``s_1 < ... < s_D``; column ``i``
  of ``u`` / ``v`` is the left / right singular vector of ``s_i``.  Small
  singular values (large inverse singular values, i.e. large local variances)
  are on-manifold directions; off-manifold directions have ``1/s_i ~ sigma^2``.
* the symmetrised Jacobian ``J~ = (J + J^T)/2`` (Prop. 1) is eigendecomposed and
  its eigenpairs are ordered by ``|eigval|`` ascending, so the leading columns
  of ``w`` (small-in-magnitude eigenvalues) are on-manifold directions.
* ``sigma`` is the noise standard deviation ``sigma_t`` of the perturbation
  kernel at time ``t`` (for the VP-SDE ``sigma_t^2 = 1 - alpha_t^2``).

All features are float64 numpy arrays.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, Union

import numpy as np

from .arrays import to_numpy64 as _to_numpy64
from .skew import skew_shares, skew_tolerance

__all__ = [
    "Spectrum",
    "SmallEndFeatures",
    "analyse_jacobian",
    "local_dimension",
    "local_dim_sweep",
    "floor_ratio",
    "local_dimension_own_floor",
    "sweep_ranks",
    "RANK_SKEW_FIELDS",
    "subspace_overlap",
    "overlaps",
]

ArrayLike = Union[np.ndarray, "torch.Tensor"]  # noqa: F821


# ----------------------------------------------------------------------------
# local dimension
# ----------------------------------------------------------------------------


def local_dimension(singular_values, sigma: float, kappa: float = 0.1):
    """Local dimensionality ``r_t`` of §3.2.

    ``r_t`` is the smallest ``r`` such that ``1/s_i < (1 + kappa) sigma^2`` for
    all ``i > r`` (1-based ranks, singular values given in ascending order),
    i.e. the 1-based position of the *last* singular value whose inverse is
    ``>= (1 + kappa) sigma^2`` (0 if there is none).  The order of the input is
    respected (no sorting), so non-monotone inverse values are handled as the
    definition says.  ``s_i == 0`` (``1/s_i = inf``) counts as on-manifold.

    ``singular_values`` may be ``(D,)`` (returns ``int``) or ``(..., D)``
    (returns an integer array over the leading dims).
    """
    s = _to_numpy64(singular_values)
    if s.ndim == 0:
        raise ValueError("singular_values must have at least one dimension")
    if np.isnan(s).any():
        raise ValueError("singular_values contain NaN")
    if np.any(s < 0):
        raise ValueError("singular values must be non-negative")
    if not (sigma > 0):
        raise ValueError(f"sigma must be positive, got {sigma}")
    thr = (1.0 + kappa) * float(sigma) ** 2
    # 1/s >= thr  <=>  s * thr <= 1   (s >= 0; s == 0 -> inf >= thr, True)
    with np.errstate(over="ignore", invalid="ignore"):
        on = s * thr <= 1.0
    D = s.shape[-1]
    # last True position (1-based) along the last axis; 0 if none
    rev_first = np.argmax(on[..., ::-1], axis=-1)
    r = np.where(on.any(axis=-1), D - rev_first, 0)
    if s.ndim == 1:
        return int(r)
    return r.astype(np.int64)


def floor_ratio(singular_values, sigma: float) -> float:
    """A Jacobian's own off-manifold floor, in units of sigma^2: the median of (1/s_i)/sigma^2 over the top half
    of ranks (the largest singular values), 1.00 for an exact score. The same number is the calibration ratio
    (`analysis.calibration_ratio`, docs/calibration.md).

    Why this estimator: off-manifold directions are the D - r_t largest singular values, all ~1/sigma^2 for an
    exact score, so for r_t < D/2 the top half of ranks is off-manifold only and its median is robust to a few
    expanding or over-contracting directions (up to a quarter of them on either side). It is biased where r_t >
    D/2 (the top half then holds on-manifold ranks, whose 1/s_i are larger) and undefined (inf) where more than
    half the top half is exactly singular.

    Args:
        singular_values: (D,) ascending.
    """
    s = np.asarray(singular_values, dtype=np.float64)
    top = s[len(s) // 2:]
    with np.errstate(divide="ignore"):
        return float(np.median(1.0 / top) / float(sigma) ** 2)


def local_dimension_own_floor(singular_values, sigma: float, kappa: float = 0.1) -> int:
    """r_t against the Jacobian's own floor: the count of `local_dimension` with the threshold (1 + kappa) c
    sigma^2, c = `floor_ratio` (instead of the paper's (1 + kappa) sigma^2). It measures the geometry where the
    model's off-manifold gain is off by a common factor: for a model whose floor is c sigma^2 with c > 1 + kappa
    the paper's r_t counts every off-manifold direction (up to D), this one still the on-manifold ranks. 0 where
    the floor is not finite."""
    c = floor_ratio(singular_values, sigma)
    if not (np.isfinite(c) and c > 0):
        return 0
    return int(local_dimension(singular_values, float(sigma) * np.sqrt(c), kappa))


def sweep_ranks(singular_values, sigma: float, kappas: Iterable[float]) -> np.ndarray:
    """r_t at each kappa against both floors: (2, len(kappas)) ints, the paper's (`local_dimension`) then the
    Jacobian's own (`local_dimension_own_floor`; 0 where that floor is not finite)."""
    kappas = list(kappas)
    c = floor_ratio(singular_values, sigma)
    paper = local_dim_sweep(singular_values, sigma, kappas)
    own = (local_dim_sweep(singular_values, float(sigma) * np.sqrt(c), kappas) if np.isfinite(c) and c > 0
           else np.zeros(len(kappas), dtype=np.int64))
    return np.stack([paper, own]).astype(np.int64)


def local_dim_sweep(singular_values, sigma: float, kappas: Iterable[float]) -> np.ndarray:
    """``r_t`` for several slack constants; returns an int array ``(len(kappas), ...)``."""
    return np.asarray([local_dimension(singular_values, sigma, k) for k in kappas], dtype=np.int64)


# ----------------------------------------------------------------------------
# subspace overlap (Eq. 2)
# ----------------------------------------------------------------------------


def subspace_overlap(a, b, *, check_orthonormal: bool = True, atol: float = 1e-6) -> np.ndarray:
    """``Phi_n^{a,b}`` of Eq. 2 for ``n = 1..N``.

    ``Phi_n = 1 - (1/n) sum_{j<=n} ||a^_j - a_j||^2 / ||a_j||^2`` with
    ``a^_j = sum_{k<=n} (b_k . a_j) b_k``: how well the span of the first ``n``
    columns of ``b`` reconstructs the first ``n`` columns of ``a``.

    ``a`` and ``b`` are ``(D, N_a)``, ``(D, N_b)`` with columns in rank order;
    the result has length ``N = min(N_a, N_b)`` (``D`` for square inputs).
    ``a`` may be arbitrary (columns are normalised; a zero column gives NaN).
    ``b`` **must have orthonormal columns**: the closed form
    ``||a^_j - a_j||^2 = ||a_j||^2 - sum_{k<=n} (b_k . a_j)^2`` holds only then.
    With ``check_orthonormal`` (default) a ``ValueError`` is raised when
    ``max |b^T b - I| > atol``.  Singular-vector and eigenvector matrices from
    :func:`analyse_jacobian` are orthonormal to ~1e-14.

    Cost: one ``O(D^3)`` product ``a^T b`` and an ``O(D^2)`` 2-D prefix sum,
    since ``Phi_n = (1/n) sum_{j<=n} sum_{k<=n} C[j, k]`` with
    ``C[j, k] = (a_j . b_k)^2 / ||a_j||^2``.
    """
    A = _to_numpy64(a)
    Bm = _to_numpy64(b)
    if A.ndim != 2 or Bm.ndim != 2:
        raise ValueError("a and b must be 2-D (D, N) matrices")
    if A.shape[0] != Bm.shape[0]:
        raise ValueError(f"a and b must have the same number of rows, got {A.shape} and {Bm.shape}")
    N = min(A.shape[1], Bm.shape[1])
    A = A[:, :N]
    Bm = Bm[:, :N]
    if check_orthonormal:
        G = Bm.T @ Bm
        err = np.max(np.abs(G - np.eye(N))) if N else 0.0
        if not err <= atol:
            raise ValueError(
                f"b must have orthonormal columns (max |b^T b - I| = {err:.3g} > atol = {atol:g}); "
                "the closed form of Eq. 2 used here is only valid for orthonormal b"
            )
    norms2 = np.sum(A * A, axis=0)  # (N,)
    P = A.T @ Bm  # P[j, k] = a_j . b_k
    with np.errstate(divide="ignore", invalid="ignore"):
        C = (P * P) / norms2[:, None]
    S = np.cumsum(np.cumsum(C, axis=0), axis=1)
    n = np.arange(1, N + 1, dtype=np.float64)
    phi = np.diagonal(S).copy() / n
    # a zero column a_j makes every Phi_n with n >= j undefined
    if np.any(norms2 == 0):
        first = int(np.argmax(norms2 == 0))
        phi[first:] = np.nan
    return phi


# ----------------------------------------------------------------------------
# Spectrum
# ----------------------------------------------------------------------------


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


class SmallEndFeatures:
    """The Fig. 2 features at the small end of a spectrum (``u``, ``v`` by ascending singular value, ``w`` by
    ascending ``|eigenvalue|``, vectors as columns), shared by `Spectrum` and the matrix-free route's
    `geometry.lowrank.LowRankSpectrum`."""

    @property
    def u_minus(self) -> np.ndarray:
        """Left singular vector of the smallest singular value."""
        return self.u[:, 0]

    @property
    def v_minus(self) -> np.ndarray:
        """Right singular vector of the smallest singular value."""
        return self.v[:, 0]

    @property
    def w_zero(self) -> np.ndarray:
        """Eigenvector of ``J~`` with the smallest ``|eigenvalue|``."""
        return self.w[:, 0]


@dataclasses.dataclass(frozen=True, eq=False)
class Spectrum(SmallEndFeatures):
    """Local features of one score Jacobian ``J`` (all arrays float64, read-only).

    Singular decomposition (ascending, paper convention)
        ``singular_values`` (D,), ``u``, ``v`` (D, D) with column ``i`` the
        left/right singular vector of ``singular_values[i]``; ``cos_uv[i] = u_i . v_i``.
    Symmetrised Jacobian ``J~ = (J + J^T)/2``
        ``eigvals`` (D,) ordered by ``|eigval|`` ascending, ``w`` (D, D) eigenvectors.
    Scalars
        ``local_dim``: ``r_t`` with the stored ``kappa``;
        ``trace``: ``Tr J``; ``trace_diff``: ``|Tr J - Tr J~|`` with ``Tr J~``
        computed as the sum of the eigenvalues of ``J~`` (Prop. 1; ~0 up to
        round-off); ``asymmetry``: ``||J - J^T||_F / ||J||_F`` (0 if ``J == 0``).
    Skew-part location (``H = (J - J^T)/2``, ``P`` = projector on the first
    ``local_dim`` right singular vectors = on-manifold subspace, ``Q = I - P``)
        ``skew_share_inside = ||PHP||^2/||H||^2``, ``skew_share_outside = ||QHQ||^2/||H||^2``,
        ``skew_share_cross = (||PHQ||^2 + ||QHP||^2)/||H||^2``; they sum to 1.
        When ``J`` is numerically symmetric (``||H||_F <= skew_tol * ||J||_F``)
        the shares are undefined and are **NaN** (not 0), so averages over a
        population skip them instead of being biased towards 0.
        ``skew_rel_inside/cross/outside``: each block's asymmetry relative to the same block of ``J``,
        ``||block(H)||_F / ||block(J)||_F`` in [0, 1] (0 for a symmetric block, NaN for an empty one), and
        ``skew_rel_ratio = skew_rel_inside / max(skew_rel_cross, skew_rel_outside)`` (NaN where the shares are):
        measure (b) of docs/nonconservative.md, free of the off-manifold block's 1/sigma_t^2 size.
        ``skew_share_w_*``, ``skew_rel_w_*``, ``skew_rel_ratio_w``: the same with the on-manifold subspace
        estimated by the first ``local_dim`` eigenvectors ``w`` of ``J~`` (smallest ``|eigval|``) instead.
        `skew_fields` gathers all of these as one dict (the diagnostics columns).
        ``rank_skew``: rank r -> the `RANK_SKEW_FIELDS` with the subspace of the first r vectors, for each of
        r_t of `sweep_ranks` at ``kappa`` and at the kappas of ``sweep`` (r_t under other definitions).
    Own floor
        ``floor_ratio``: the Jacobian's own off-manifold floor over sigma^2 (`floor_ratio`, the calibration ratio);
        ``local_dim_own_floor``: r_t against it (`local_dimension_own_floor`, with the stored ``kappa``).
    Denoiser view (App. C)
        ``denoiser_eigvals = 1 + sigma^2 * eigvals``: eigenvalues of
        ``I + sigma^2 J~`` (same order as ``eigvals``), i.e. of ``alpha_t`` times
        the symmetrised Jacobian of the VP denoiser ``D(x) = (x + sigma^2 g(x))/alpha``.
        For the true score ``I + sigma^2 J = (alpha^2/sigma^2) Cov[x_0 | x_t]``
        is positive semi-definite, so they cannot be negative; off the
        manifold they are ideally exactly 0 (the edge), and they may exceed 1
        (the paper's positive eigenvalues of J~).  ``denoiser_min``: the
        smallest of them; ``denoiser_frac_negative``: the fraction below
        ``-kappa`` (a Jacobian gain more than ``(1+kappa)/sigma^2``: over-
        contraction beyond the local-dimension slack, a training error);
        ``denoiser_frac_above_one``: the fraction above ``1 + kappa``
        (expanding directions, allowed).
    """

    singular_values: np.ndarray
    u: np.ndarray
    v: np.ndarray
    cos_uv: np.ndarray
    eigvals: np.ndarray
    w: np.ndarray
    sigma: float
    kappa: float
    local_dim: int
    trace: float
    trace_diff: float
    asymmetry: float
    skew_share_inside: float
    skew_share_outside: float
    skew_share_cross: float
    skew_rel_inside: float
    skew_rel_cross: float
    skew_rel_outside: float
    skew_rel_ratio: float
    skew_share_w_inside: float
    skew_share_w_cross: float
    skew_share_w_outside: float
    skew_rel_w_inside: float
    skew_rel_w_cross: float
    skew_rel_w_outside: float
    skew_rel_ratio_w: float
    denoiser_eigvals: np.ndarray
    denoiser_min: float
    denoiser_frac_negative: float
    denoiser_frac_above_one: float
    floor_ratio: float = float("nan")
    local_dim_own_floor: int = 0
    rank_skew: Dict[int, Dict[str, float]] = dataclasses.field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.singular_values.shape[0])

    @property
    def inverse_singular_values(self) -> np.ndarray:
        """``1/s_i`` (descending for ascending ``s``); ``inf`` where ``s_i == 0``."""
        with np.errstate(divide="ignore"):
            return 1.0 / self.singular_values

    # features named in the paper (Fig. 2)
    @property
    def u_plus(self) -> np.ndarray:
        """Left singular vector of the largest singular value."""
        return self.u[:, -1]

    @property
    def v_plus(self) -> np.ndarray:
        """Right singular vector of the largest singular value."""
        return self.v[:, -1]

    @property
    def w_minus(self) -> np.ndarray:
        """Eigenvector of ``J~`` with the most negative eigenvalue."""
        return self.w[:, int(np.argmin(self.eigvals))]

    @property
    def w_plus(self) -> np.ndarray:
        """Eigenvector of ``J~`` with the most positive eigenvalue."""
        return self.w[:, int(np.argmax(self.eigvals))]

    @property
    def skew_fields(self) -> Dict[str, float]:
        """Every measure of where the skew part lies (the ``skew_*`` fields), by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name.startswith("skew_")}

    def local_dim_sweep(self, kappas: Iterable[float]) -> np.ndarray:
        """``r_t`` for each slack constant in ``kappas`` (int array)."""
        return local_dim_sweep(self.singular_values, self.sigma, kappas)


#: The skew measures `analyse_jacobian` also computes at other ranks (``rank_skew``): the diagnostics columns
#: the claims on the non-conservative part read, each at the subspace of the first r vectors.
RANK_SKEW_FIELDS = ("skew_share_inside", "skew_rel_ratio", "skew_share_w_inside", "skew_rel_ratio_w")


def analyse_jacobian(
    J,
    sigma: float,
    kappa: float = 0.1,
    *,
    skew_tol: float | None = None,
    sweep: Iterable[float] = (),
) -> Spectrum:
    """Spectral features of one ``(D, D)`` score Jacobian (tensor or array), in float64.

    ``sigma`` is the noise std ``sigma_t`` at the Jacobian's time; ``kappa`` the
    local-dimension slack.  ``skew_tol``: below it ``||J - J^T|| / ||J||`` is round-off (`skew.skew_shares`);
    None = `skew.skew_tolerance` of J's own dtype (a float32 Jacobian of a conservative field has float32
    round-off, not a skew part).  ``sweep``: kappas whose r_t, against both floors (`sweep_ranks`), also get
    the skew split (``rank_skew``; the own floor's r_t at ``kappa`` always does).
    See :class:`Spectrum` for the fields.
    """
    if skew_tol is None:
        skew_tol = skew_tolerance(J)
    Jn = _to_numpy64(J)
    if Jn.ndim != 2 or Jn.shape[0] != Jn.shape[1]:
        raise ValueError(f"J must be a square (D, D) matrix, got shape {Jn.shape}")
    if not np.all(np.isfinite(Jn)):
        raise ValueError("J contains non-finite values")
    sigma = float(sigma)
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    D = Jn.shape[0]

    # --- SVD, ascending ---------------------------------------------------
    U, s, Vh = np.linalg.svd(Jn)  # descending
    s = s[::-1]
    u = U[:, ::-1]
    v = Vh[::-1, :].T
    cos_uv = np.sum(u * v, axis=0)

    # --- symmetrised Jacobian, ordered by |eigval| ascending ---------------
    Js = 0.5 * (Jn + Jn.T)
    lam, W = np.linalg.eigh(Js)
    order = np.argsort(np.abs(lam), kind="stable")
    lam = lam[order]
    W = W[:, order]

    r = local_dimension(s, sigma, kappa)

    # --- scalars -------------------------------------------------------------
    trace = float(np.trace(Jn))
    trace_diff = float(abs(trace - np.sum(lam)))
    normJ = float(np.linalg.norm(Jn))
    asym = 0.0 if normJ == 0.0 else float(np.linalg.norm(Jn - Jn.T) / normJ)

    # The one implementation of the split (also the Fig. 1 toy's tangent/normal shares): subspace = the first
    # r_t right singular vectors; and the same with the first r_t eigenvectors w of J~ (docs/nonconservative.md).
    # All ranks from one change of basis per basis: r_t first, then the further ranks asked for.
    extra = sorted({int(k) for k in sweep_ranks(s, sigma, [kappa, *sweep]).ravel()})
    ks = np.array([r, *extra], dtype=np.int64)
    split = skew_shares(Jn[None], v, ks, skew_tol=skew_tol)
    split_w = skew_shares(Jn[None], W, ks, skew_tol=skew_tol)
    blocks = ("inside", "cross", "outside")
    skew = {f"skew_share_{b}": float(split[f"share_{b}"][0, 0]) for b in blocks}
    skew |= {f"skew_rel_{b}": float(split[f"rel_{b}"][0, 0]) for b in blocks}
    skew["skew_rel_ratio"] = float(split["rel_ratio"][0, 0])
    skew |= {f"skew_share_w_{b}": float(split_w[f"share_{b}"][0, 0]) for b in blocks}
    skew |= {f"skew_rel_w_{b}": float(split_w[f"rel_{b}"][0, 0]) for b in blocks}
    skew["skew_rel_ratio_w"] = float(split_w["rel_ratio"][0, 0])
    rank_skew = {k: {"skew_share_inside": float(split["share_inside"][0, j]),
                     "skew_rel_ratio": float(split["rel_ratio"][0, j]),
                     "skew_share_w_inside": float(split_w["share_inside"][0, j]),
                     "skew_rel_ratio_w": float(split_w["rel_ratio"][0, j])}
                 for j, k in enumerate(ks.tolist()) if j > 0}

    den = 1.0 + sigma**2 * lam
    den_min = float(den.min()) if D else float("nan")
    frac_negative = float(np.mean(den < -kappa)) if D else 0.0
    frac_above_one = float(np.mean(den > 1.0 + kappa)) if D else 0.0

    return Spectrum(
        singular_values=_readonly(s),
        u=_readonly(u),
        v=_readonly(v),
        cos_uv=_readonly(cos_uv),
        eigvals=_readonly(lam),
        w=_readonly(W),
        sigma=sigma,
        kappa=float(kappa),
        local_dim=int(r),
        trace=trace,
        trace_diff=trace_diff,
        asymmetry=asym,
        **skew,
        denoiser_eigvals=_readonly(den),
        denoiser_min=den_min,
        denoiser_frac_negative=frac_negative,
        denoiser_frac_above_one=frac_above_one,
        floor_ratio=floor_ratio(s, sigma),
        local_dim_own_floor=local_dimension_own_floor(s, sigma, kappa),
        rank_skew=rank_skew,
    )


def overlaps(spec: Spectrum) -> Dict[str, np.ndarray]:
    """Eq. 2 overlaps between the three feature bases of one spectrum.

    Returns ``{"uv": Phi^{u,v}, "uw": Phi^{u,w}, "vw": Phi^{v,w}}`` (first letter
    is ``a``, the reconstructed basis; second is ``b``), each of shape ``(D,)``.
    """
    return {
        "uv": subspace_overlap(spec.u, spec.v),
        "uw": subspace_overlap(spec.u, spec.w),
        "vw": subspace_overlap(spec.v, spec.w),
    }
