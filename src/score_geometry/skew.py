"""Where the non-conservative part of a score field acts: the skew part H = (J - J^T)/2 of its Jacobian split
into blocks of a subspace and its complement (the paper's Fig. 1 and §4: mixing "within the manifold").

For a subspace with orthonormal basis P (the first k columns of an orthonormal basis B) and its complement Q,
||H||_F^2 = ||P^T H P||^2 + ||P^T H Q||^2 + ||Q^T H P||^2 + ||Q^T H Q||^2, so the shares of ||H||_F^2 in the
inside block, the cross blocks and the outside block sum to 1. On a surface in R^3 the subspace is the tangent
plane and the complement the normal: the tangent share is the part of the rotation that mixes along the
surface, the rest involves the normal direction. In R^3 the skew part is a cross product with half the curl,
H v = (curl g / 2) x v, so the tangent share is also (curl g . n)^2 / |curl g|^2.

All functions take and return float64 numpy arrays (tensors are converted).
"""

from __future__ import annotations

import numpy as np

from .spectra import _to_numpy64

__all__ = ["skew_shares", "tangent_normal_basis", "curl_from_jacobian"]


def skew_shares(J, basis, k: int, *, skew_tol: float = 1e-12) -> dict[str, np.ndarray]:
    """Split the skew part of each Jacobian between a k-dim subspace and its complement.

    Args:
        J: (N, D, D) Jacobians, ``J[n, i, j] = d g_i / d x_j``.
        basis: (N, D, D) or (D, D) orthonormal bases; the first ``k`` columns span the subspace
            (e.g. the tangent plane of a surface), the rest its complement (the normal).
        k: subspace dimension, 0 <= k <= D.
        skew_tol: where ``||H||_F <= skew_tol ||J||_F`` the field is conservative to round-off and the shares are
            undefined: NaN (as in `spectra.analyse_jacobian`), so averages over points skip them.

    Returns:
        dict of (N,) arrays: ``share_inside`` = ||P^T H P||^2 / ||H||^2, ``share_cross`` = the two mixed blocks,
        ``share_outside`` = ||Q^T H Q||^2 / ||H||^2 (these three sum to 1, or are NaN); ``skew_norm`` = ||H||_F,
        ``jac_norm`` = ||J||_F; and the same three blocks as fractions of ||J||_F^2 (``frac_inside``,
        ``frac_cross``, ``frac_outside``), which are defined everywhere and 0 for a conservative field.
    """
    Jn = _to_numpy64(J)
    if Jn.ndim != 3 or Jn.shape[1] != Jn.shape[2]:
        raise ValueError(f"J must have shape (N, D, D), got {Jn.shape}")
    D = Jn.shape[1]
    B = np.broadcast_to(_to_numpy64(basis), Jn.shape)
    if not 0 <= k <= D:
        raise ValueError(f"k must be in [0, D={D}], got {k}")
    gram_err = float(np.max(np.abs(np.swapaxes(B, 1, 2) @ B - np.eye(D)))) if len(B) else 0.0
    if gram_err > 1e-8:
        raise ValueError(f"basis columns must be orthonormal (max |B^T B - I| = {gram_err:.3g}); "
                         "orthonormalise it first, e.g. with numpy.linalg.qr")
    H = 0.5 * (Jn - np.swapaxes(Jn, 1, 2))
    Hb = np.swapaxes(B, 1, 2) @ H @ B  # H in the basis; Frobenius norms are preserved
    inside = np.sum(Hb[:, :k, :k] ** 2, axis=(1, 2))
    outside = np.sum(Hb[:, k:, k:] ** 2, axis=(1, 2))
    cross = np.sum(Hb[:, :k, k:] ** 2, axis=(1, 2)) + np.sum(Hb[:, k:, :k] ** 2, axis=(1, 2))
    h2 = np.sum(H * H, axis=(1, 2))
    j2 = np.sum(Jn * Jn, axis=(1, 2))
    skew_norm, jac_norm = np.sqrt(h2), np.sqrt(j2)
    undefined = (skew_norm <= skew_tol * jac_norm) | (h2 == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        j2_safe = np.where(j2 > 0, j2, 1.0)
        out = {
            "share_inside": np.where(undefined, np.nan, inside / h2),
            "share_cross": np.where(undefined, np.nan, cross / h2),
            "share_outside": np.where(undefined, np.nan, outside / h2),
            "frac_inside": inside / j2_safe,
            "frac_cross": cross / j2_safe,
            "frac_outside": outside / j2_safe,
        }
    return {**out, "skew_norm": skew_norm, "jac_norm": jac_norm}


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
