"""Where the non-conservative part of a score field acts: the skew part H = (J - J^T)/2 of its Jacobian split
into blocks of a subspace and its complement (the paper's Fig. 1 and §4: mixing "within the manifold").

For a subspace with orthonormal basis P (the first k columns of an orthonormal basis B) and its complement Q,
||H||_F^2 = ||P^T H P||^2 + ||P^T H Q||^2 + ||Q^T H P||^2 + ||Q^T H Q||^2, so the shares of ||H||_F^2 in the
inside block, the cross blocks and the outside block sum to 1. On a surface in R^3 the subspace is the tangent
plane and the complement the normal: the tangent share is the part of the rotation that mixes along the
surface, the rest involves the normal direction. In R^3 the skew part is a cross product with half the curl,
H v = (curl g / 2) x v, so the tangent share is also (curl g . n)^2 / |curl g|^2.

Three measures of where H acts (docs/nonconservative.md):
  (a) shares of ||H||_F^2 in the blocks (`skew_shares`: ``share_*``); an isotropic H gives `isotropic_shares`;
  (b) each block's asymmetry relative to the same block of J, ||block(H)||_F / ||block(J)||_F in [0, 1]
      (`skew_shares`: ``rel_*``), so the normal block of a score Jacobian (~ -I / sigma_t^2) no longer dominates;
  (c) on a surface in R^3, the curl of the field's tangential part: n . curl(P g) = n . curl g for n = x / |x|
      (curl n = 0), the scalar vorticity the paper's Fig. 1 right panels draw (`tangent_curl`).

All functions take and return float64 numpy arrays (tensors are converted). What counts as "no skew part"
follows the input's dtype (`skew_tolerance`): a float32 Jacobian of a conservative field is not exactly
symmetric, and the shares of its round-off are noise, not a location.
"""

from __future__ import annotations

import sys

import numpy as np

from .arrays import to_numpy64 as _to_numpy64

__all__ = ["skew_shares", "skew_tolerance", "block_ratio", "isotropic_shares", "tangent_normal_basis",
           "curl_from_jacobian", "tangent_curl"]

#: The float64 analysis's own round-off floor (basis changes, norms) relative to ||J||_F: the tolerance of an
#: exact or float64 input.
ANALYSIS_TOL = 1e-12
#: Round-off makes a computed Jacobian of a conservative field skew by about one eps of its dtype relative to
#: ||J||_F (measured: 0.04-1.2 eps for float32 Hessians of MLP potentials at D = 3-784, 1.1 eps for the skew part
#: of a float32 U-Net Jacobian's error against float64); the tolerance is this many eps.
ROUNDOFF_EPS = 32


def _eps(a) -> float:
    """Machine epsilon of `a`'s dtype (tensor or array-like); 0 for integers (exact)."""
    dtype = getattr(a, "dtype", None)
    if dtype is not None and type(dtype).__module__ == "torch":  # a tensor's dtype; torch is loaded already
        return float(sys.modules["torch"].finfo(dtype).eps) if dtype.is_floating_point else 0.0
    dt = np.asarray(a).dtype if dtype is None else np.dtype(dtype)
    return float(np.finfo(dt).eps) if np.issubdtype(dt, np.floating) else 0.0


def skew_tolerance(J) -> float:
    """The default ``skew_tol`` for Jacobians `J` (tensor or array): ``||H||_F / ||J||_F`` at or below it is
    round-off of J's dtype, not a skew part. ``max(ANALYSIS_TOL, ROUNDOFF_EPS * eps(dtype))``: 1e-12 for float64
    (and exact inputs), 3.8e-6 for float32, 0.031 for float16."""
    return max(ANALYSIS_TOL, ROUNDOFF_EPS * _eps(J))


def _check_basis(B: np.ndarray, N: int, D: int) -> None:
    """A (D, D) basis or one per Jacobian, (N, D, D); else a ValueError that says what is expected."""
    if B.shape in ((D, D), (N, D, D)):
        return
    hint = ""
    if B.ndim in (2, 3) and B.shape[-2] == D and B.shape[-1] < D:
        hint = (f"; this looks like a basis of the subspace alone, (D, k) = {B.shape[-2:]}: complete it with its "
                "complement, e.g. numpy.linalg.qr(basis, mode='complete')[0] (its first k columns span the same "
                "subspace)")
    elif B.ndim == 3 and B.shape[1:] == (D, D):
        hint = f"; there are {B.shape[0]} bases for {N} Jacobians"
    raise ValueError(f"basis must be a full orthonormal basis of R^D, (D, D) = ({D}, {D}), or one per Jacobian, "
                     f"(N, D, D) = ({N}, {D}, {D}), whose first k columns span the subspace and the others its "
                     f"complement; got shape {B.shape}{hint}")


def skew_shares(J, basis, k: int, *, skew_tol: float | None = None) -> dict[str, np.ndarray]:
    """Split the skew part of each Jacobian between a k-dim subspace and its complement.

    Args:
        J: (N, D, D) Jacobians, ``J[n, i, j] = d g_i / d x_j``.
        basis: (N, D, D) or (D, D) orthonormal bases; the first ``k`` columns span the subspace
            (e.g. the tangent plane of a surface), the rest its complement (the normal). A (D, k) basis of the
            subspace alone is refused (complete it, e.g. ``numpy.linalg.qr(basis, mode="complete")[0]``).
        k: subspace dimension, 0 <= k <= D; or a 1-D sequence of them, all computed from one change of basis
            (then every array below is (N, len(k))).
        skew_tol: where ``||H||_F <= skew_tol ||J||_F`` the field is conservative to round-off: the shares are
            undefined, NaN (as in `spectra.analyse_jacobian`), so averages over points skip them, and the
            ``frac_*`` and ``rel_*`` of the skew part are 0. None (the default): `skew_tolerance` of J's dtype
            (1e-12 for float64, 3.8e-6 for float32), so a float32 Jacobian's round-off is not reported as shares.

    Returns:
        dict of (N,) arrays: ``share_inside`` = ||P^T H P||^2 / ||H||^2, ``share_cross`` = the two mixed blocks,
        ``share_outside`` = ||Q^T H Q||^2 / ||H||^2 (these three sum to 1, or are NaN); ``skew_norm`` = ||H||_F,
        ``jac_norm`` = ||J||_F; and the same three blocks as fractions of ||J||_F^2 (``frac_inside``,
        ``frac_cross``, ``frac_outside``), which are defined everywhere and 0 for a conservative field;
        ``rel_inside`` = ||P^T H P||_F / ||P^T J P||_F, ``rel_cross`` = ||(P^T H Q, Q^T H P)||_F /
        ||(P^T J Q, Q^T J P)||_F, ``rel_outside`` = ||Q^T H Q||_F / ||Q^T J Q||_F: each block's asymmetry
        relative to the same block of J, in [0, 1] (0 where that block is symmetric, so 0 everywhere for a
        conservative field; 1 where it is purely skew); NaN where that block of J is empty or zero to round-off,
        ||block(J)||_F <= skew_tol ||J||_F (e.g. k = 0 or D, or J block-diagonal in this basis);
        ``rel_ratio`` = `block_ratio` of the three (NaN where the shares are).
    """
    tol = skew_tolerance(J) if skew_tol is None else float(skew_tol)
    if not tol >= 0:
        raise ValueError(f"skew_tol must be >= 0 (or None for the dtype's round-off), got {skew_tol}")
    Jn = _to_numpy64(J)
    if Jn.ndim != 3 or Jn.shape[1] != Jn.shape[2]:
        raise ValueError(f"J must have shape (N, D, D), got {Jn.shape}")
    D = Jn.shape[1]
    B = _to_numpy64(basis)
    _check_basis(B, len(Jn), D)
    B = np.broadcast_to(B, Jn.shape)
    ks = np.atleast_1d(np.asarray(k))
    if ks.ndim != 1 or not np.issubdtype(ks.dtype, np.integer) or not ((0 <= ks) & (ks <= D)).all():
        raise ValueError(f"k must be an integer (or a 1-D sequence of them) in [0, D={D}], got {k}")
    gram_err = float(np.max(np.abs(np.swapaxes(B, 1, 2) @ B - np.eye(D)))) if len(B) else 0.0
    if gram_err > 1e-8:
        raise ValueError(f"basis columns must be orthonormal (max |B^T B - I| = {gram_err:.3g}); "
                         "orthonormalise it first, e.g. with numpy.linalg.qr")
    H = 0.5 * (Jn - np.swapaxes(Jn, 1, 2))
    Jb = np.swapaxes(B, 1, 2) @ Jn @ B  # J in the basis; Frobenius norms are preserved
    Hb = 0.5 * (Jb - np.swapaxes(Jb, 1, 2))  # = B^T H B
    inside, cross, outside = _block_sums(Hb**2, ks)  # (N, len(ks)) each
    j_inside, j_cross, j_outside = _block_sums(Jb**2, ks)
    h2 = np.sum(H * H, axis=(1, 2))[:, None]
    j2 = np.sum(Jn * Jn, axis=(1, 2))[:, None]
    skew_norm, jac_norm = np.sqrt(h2), np.sqrt(j2)
    undefined = (skew_norm <= tol * jac_norm) | (h2 == 0)
    # Below the tolerance the skew part is round-off: no share is reported and its size counts as 0.
    inside, cross, outside = (np.where(undefined, 0.0, a) for a in (inside, cross, outside))
    with np.errstate(divide="ignore", invalid="ignore"):
        j2_safe = np.where(j2 > 0, j2, 1.0)
        out = {
            "share_inside": np.where(undefined, np.nan, inside / h2),
            "share_cross": np.where(undefined, np.nan, cross / h2),
            "share_outside": np.where(undefined, np.nan, outside / h2),
            "frac_inside": inside / j2_safe,
            "frac_cross": cross / j2_safe,
            "frac_outside": outside / j2_safe,
            "rel_inside": _relative(inside, j_inside, j2, tol),
            "rel_cross": _relative(cross, j_cross, j2, tol),
            "rel_outside": _relative(outside, j_outside, j2, tol),
        }
    ratio = np.where(undefined, np.nan, block_ratio(out["rel_inside"], out["rel_cross"], out["rel_outside"]))
    out = {**out, "rel_ratio": ratio, "skew_norm": np.broadcast_to(skew_norm, ratio.shape),
           "jac_norm": np.broadcast_to(jac_norm, ratio.shape)}
    return {name: (a[:, 0] if np.ndim(k) == 0 else np.ascontiguousarray(a)) for name, a in out.items()}


def _block_sums(M2: np.ndarray, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sums of the squared entries M2 (N, D, D) in the inside (first k rows and columns), cross and outside
    blocks, for every k of `ks` at once from one 2-D cumulative sum: (N, len(ks)) each."""
    S = np.zeros((M2.shape[0], M2.shape[1] + 1, M2.shape[2] + 1))
    S[:, 1:, 1:] = M2.cumsum(axis=1).cumsum(axis=2)
    inside, rows, cols, total = S[:, ks, ks], S[:, ks, -1], S[:, -1, ks], S[:, -1:, -1]
    outside = total - rows - cols + inside
    return inside, np.clip(rows + cols - 2 * inside, 0.0, None), np.clip(outside, 0.0, None)


def _relative(h2_block: np.ndarray, j2_block: np.ndarray, j2: np.ndarray, skew_tol: float) -> np.ndarray:
    """sqrt(||block(H)||^2 / ||block(J)||^2), NaN where the block of J is zero to round-off."""
    empty = j2_block <= skew_tol**2 * j2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(empty, np.nan, np.sqrt(h2_block / np.where(empty, 1.0, j2_block)))


def block_ratio(rel_inside, rel_cross, rel_outside) -> np.ndarray:
    """rel_inside / max(rel_cross, rel_outside) (N,): how much more asymmetric the subspace block is, for its size,
    than the most asymmetric block that involves the complement (measure (b) as one number; 1 when all blocks
    are equally asymmetric). An empty (NaN) block is left out of the max; inf where only the inside block is
    asymmetric; NaN where no block is asymmetric (a conservative field) or there is no inside or no complement
    (k = 0 or k = D)."""
    num = np.asarray(rel_inside, dtype=np.float64)
    den = np.fmax(np.asarray(rel_cross, dtype=np.float64), np.asarray(rel_outside, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


def isotropic_shares(k: int, D: int) -> dict[str, float]:
    """Expected shares of ||H||_F^2 for an isotropic skew H (i.i.d. entries above the diagonal) in the blocks
    of a k-dim subspace of R^D: k(k-1) / D(D-1) inside, 2k(D-k) / D(D-1) cross, (D-k)(D-k-1) / D(D-1)
    outside (counts of independent entries). D = 3, k = 2: 1/3, 2/3, 0."""
    if not 0 <= k <= D or D < 2:
        raise ValueError(f"need D >= 2 and 0 <= k <= D, got k={k}, D={D}")
    pairs = D * (D - 1)
    return {"inside": k * (k - 1) / pairs, "cross": 2 * k * (D - k) / pairs,
            "outside": (D - k) * (D - k - 1) / pairs}


def tangent_normal_basis(normal) -> np.ndarray:
    """Orthonormal bases (N, 3, 3) whose columns are two tangent vectors and then the unit normal.

    Args:
        normal: (N, 3) normals of a surface in R^3 (any non-zero length).
    """
    n = _to_numpy64(normal)
    if n.ndim != 2 or n.shape[1] != 3:
        raise ValueError(f"normal must have shape (N, 3), got {n.shape}")
    norms = np.linalg.norm(n, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("normal vectors must be non-zero")
    n = n / norms
    # Any helper axis not parallel to n gives the first tangent by Gram-Schmidt.
    helper = np.where(np.abs(n[:, :1]) < 0.9, np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 1.0, 0.0]]))
    t1 = helper - np.sum(helper * n, axis=1, keepdims=True) * n
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    t2 = np.cross(n, t1)
    return np.stack([t1, t2, n], axis=2)


def curl_from_jacobian(J) -> np.ndarray:
    """Curl (N, 3) of a field in R^3 from its Jacobians (N, 3, 3): curl_i = eps_ijk dg_k/dx_j = 2 * axial(H)."""
    Jn = _to_numpy64(J)
    if Jn.ndim != 3 or Jn.shape[1:] != (3, 3):
        raise ValueError(f"J must have shape (N, 3, 3), got {Jn.shape}")
    return np.stack([Jn[:, 2, 1] - Jn[:, 1, 2], Jn[:, 0, 2] - Jn[:, 2, 0], Jn[:, 1, 0] - Jn[:, 0, 1]], axis=1)


def tangent_curl(J, normal, *, skew_tol: float | None = None) -> dict[str, np.ndarray]:
    """The curl of a field's tangential part on a surface in R^3 (the rotation Fig. 1's right panels draw).

    With P = I - n n^T and n = x / |x| (the sphere's normal, extended radially), curl(P g) = curl g -
    grad(n . g) x n - (n . g) curl n and curl n = 0, so n . curl(P g) = n . curl g: the vorticity of the
    tangential flow is the normal component of the whole field's curl, read off the Jacobian. (For another
    surface the extended normal is the gradient of a distance function, also curl-free near the surface.)

    Args:
        J: (N, 3, 3) Jacobians of g at the points.
        normal: (N, 3) unit normals there (normalised here).
        skew_tol: as in `skew_shares` (None: `skew_tolerance` of J's dtype): where ||H||_F <= skew_tol ||J||_F
            the curl is round-off: the ratio to |curl g| is NaN and ``rel_jac`` 0.

    Returns:
        dict of (N,) arrays: ``curl_normal`` = n . curl g (signed), ``curl_norm`` = |curl g|,
        ``rel_curl`` = |n . curl g| / |curl g| (= sqrt of the tangent share of ||H||^2), ``rel_jac`` =
        |n . curl g| / ||J||_F (= sqrt(2 x the tangent block's fraction of ||J||^2); 0 for a conservative field).
    """
    tol = skew_tolerance(J) if skew_tol is None else float(skew_tol)
    Jn = _to_numpy64(J)
    n = _to_numpy64(normal)
    if n.shape != (len(Jn), 3):
        raise ValueError(f"normal must have shape (N, 3) = ({len(Jn)}, 3), got {n.shape}")
    n = n / np.linalg.norm(n, axis=1, keepdims=True)
    curl = curl_from_jacobian(Jn)
    omega = np.sum(curl * n, axis=1)
    curl_norm = np.linalg.norm(curl, axis=1)
    jac_norm = np.linalg.norm(Jn, axis=(1, 2))
    # |curl g| = sqrt(2) ||H||_F in R^3.
    undefined = (curl_norm <= np.sqrt(2) * tol * jac_norm) | (curl_norm == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_curl = np.where(undefined, np.nan, np.abs(omega) / curl_norm)
        rel_jac = np.where(jac_norm > 0, np.abs(omega) / np.where(jac_norm > 0, jac_norm, 1.0), np.nan)
        rel_jac = np.where(undefined & (jac_norm > 0), 0.0, rel_jac)
    return {"curl_normal": omega, "curl_norm": curl_norm, "rel_curl": rel_curl, "rel_jac": rel_jac}
