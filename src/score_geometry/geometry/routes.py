"""Which spectral route a Jacobian stage takes (no torch: the workflow decides it while building its DAG).

``exact``: the D x D Jacobian (`jacobian.score_jacobian`) and its full decompositions (`spectra`);
``lowrank``: the computed part of the spectra without forming J (`geometry.lowrank`); ``auto``: exact up to
`EXACT_MAX_DIM`, matrix-free above.
"""

from __future__ import annotations

#: The spectral routes a Jacobian stage can take, by name.
ROUTES = ("auto", "exact", "lowrank")
#: ``"auto"`` takes the exact route up to this D and the matrix-free one above. At D = 784 the matrix-free
#: route costs ~22x the exact route's network passes and ~58x its time on 2 CPU cores (docs/benchmarks.md,
#: trained U-Net: it is exact to 1e-5 but pays for k ~ D/4 converged triplets). On the default-width U-Net the
#: two cross near D = 12,288 (a 3 x 64 x 64 image: ~650 s of exact passes plus the SVD of a 600 MB matrix, against
#: an estimated 300-900 s matrix-free for k = 100-300; docs/benchmarks.md, "One network pass against D"), so auto
#: keeps the exact route, exact in every rank, up to there.
EXACT_MAX_DIM = 12_288


def choose_route(method: str, D: int) -> str:
    """``"exact"`` or ``"lowrank"`` for a ``method`` of `ROUTES` and an image of D numbers."""
    if method not in ROUTES:
        raise ValueError(f"method must be one of {ROUTES}, got {method!r}")
    if method == "auto":
        return "exact" if D <= EXACT_MAX_DIM else "lowrank"
    return method
