"""The paper's claims as computed verdicts: one row per claim with its statistic, threshold, value and verdict.

Every verdict is a number compared with a stated threshold, never a sentence written by eye. Claims that use
the local dimension r_t are only judged when the noise floor is calibrated (docs/calibration.md): otherwise
r_t measures training error, and the verdict is "not measurable here". `origin` says whether a claim can come
out of the parameterisation itself: with x₀-prediction J = (α_t ∇D − I)/σ_t², so the floor at σ_t², u_i ≈ −v_i
at high ranks and the symmetric off-manifold block are largely built in; with the closed-form oracle every
claim follows from the formula (the control whose verdicts are known, tests/test_claims.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .analysis import AT_R_FIELDS, CALIBRATION_BAND, FEATURE_NAMES, FLOORS

__all__ = ["RunTables", "CLAIMS", "claims_table", "claims_markdown", "vae_converged", "CALIBRATION_BAND",
           "RELATIVE_RATIO", "in_band", "with_r_t", "only_in_band", "r_t_definitions", "robustness"]

HOLDS, FAILS, NOT_MEASURABLE = "holds", "fails", "not measurable here"
#: claims whose statistic is built into x₀-prediction's J = (α_t ∇D − I)/σ_t² (the −I/σ_t² part)
STRUCTURAL_UNDER_X0 = {"calibration", "floor_lower_bound", "cos_minus_one_high_ranks", "denoiser_psd"}


@dataclass(frozen=True)
class RunTables:
    """What one run's claims are computed from (the stage outputs, already read).

    diagnostics, overlaps, spectra: stats/*.parquet (one row per Jacobian / per (Jacobian, pair, n) / per
        (Jacobian, rank)). calibration: stats/calibration_summary.csv (per source and t), or None.
    features: (n_images, n_times, 7, D) Fig. 2 vectors in `FEATURE_NAMES` order, for `feature_images` (global
        image indices) at `feature_t`; stroke: (n_sequences, D) bool, the digit's pixels in the final sample.
    toy: toy/summary.csv; vae_dims: vae/local_dims.parquet; vae_metrics: the clean VAE's metrics records
        (one per epoch: gamma, mse, active_dims); each None when the run has no such stage.
    local_dims: stats/local_dims.parquet (r_t per kappa against both floors, and what the claims read at it),
        for the claims' other r_t definitions (`r_t_definitions`); None judges the paper's r_t alone.
    parameterisation: "x0", "eps" or "oracle".
    """

    diagnostics: pd.DataFrame
    overlaps: pd.DataFrame
    spectra: pd.DataFrame
    parameterisation: str
    kappa: float = 0.1
    calibration: pd.DataFrame | None = None
    features: np.ndarray | None = None
    feature_images: np.ndarray | None = None
    feature_t: np.ndarray | None = None
    stroke: np.ndarray | None = None
    toy: pd.DataFrame | None = None
    vae_dims: pd.DataFrame | None = None
    vae_metrics: list[dict] | None = None
    local_dims: pd.DataFrame | None = None


@dataclass(frozen=True)
class Result:
    value: float
    detail: str
    verdict: str
    note: str = ""


@dataclass(frozen=True)
class Claim:
    id: str
    section: str
    claim: str
    statistic: str
    threshold: str
    uses_r_t: bool
    compute: Callable[[RunTables], Result]
    #: the threshold as numbers: the value holds at >= lower and <= upper (None: no such side); what the
    #: trajectory figure draws. Some verdicts also ask more than the value (see `threshold`).
    lower: float | None = None
    upper: float | None = None
    #: the statistic reads ranks the matrix-free route does not compute (the top of the spectrum, every rank,
    #: or the skew splits of the full bases): not measurable on a run analysed by it
    full_spectrum: bool = False


#: Why a `Claim.full_spectrum` claim is not measurable on the matrix-free route.
NEEDS_FULL_SPECTRUM = ("needs the full spectrum: the matrix-free route (jacobian.route: lowrank) computes the "
                       "first k ranks only")


def matrix_free(diagnostics: pd.DataFrame) -> bool:
    """Whether a run's Jacobians were analysed by the matrix-free route (diagnostics' ``route`` column)."""
    return "route" in diagnostics and bool((diagnostics["route"] == "lowrank").any())


def image_dim(r: "RunTables") -> int:
    """D, the numbers per image (diagnostics' ``dim``; the spectra's last rank for tables that predate it)."""
    if "dim" in r.diagnostics and len(r.diagnostics):
        return int(r.diagnostics["dim"].iloc[0])
    return int(r.spectra["rank"].max())


def _per_t(values: pd.Series, fmt: str = "{:.3g}") -> str:
    return "; ".join(f"t={t:g}: {fmt.format(v)}" for t, v in values.items())


def _all(values: pd.Series, ok: Callable[[np.ndarray], np.ndarray]) -> str:
    v = values.to_numpy(dtype=float)
    return HOLDS if len(v) and np.isfinite(v).all() and ok(v).all() else FAILS


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(x) < 3 or np.ptp(y) == 0:
        return float("nan")  # no trend at all (e.g. the oracle's constant r_t)
    return float(spearmanr(x, y).statistic)


def in_band(diagnostics: pd.DataFrame) -> pd.Series:
    """Per Jacobian: is its own calibration ratio inside `CALIBRATION_BAND`?"""
    lo, hi = CALIBRATION_BAND
    return diagnostics["calibration_ratio"].between(lo, hi)


# --- the claims ---------------------------------------------------------------------------------------------

def _calibration(r: RunTables) -> Result:
    if r.calibration is not None and len(r.calibration):
        c = r.calibration.set_index(["source", "t"])["calibration_ratio"]
        detail = "; ".join(f"{s} t={t:g}: {v:.3f}" for (s, t), v in c.items())
    else:
        c = r.diagnostics.groupby("t")["calibration_ratio"].median()
        detail = _per_t(c, "{:.3f}")
    lo, hi = CALIBRATION_BAND
    worst = float(c.iloc[int(np.argmax(np.abs(np.log(c.to_numpy(dtype=float)))))])
    share = in_band(r.diagnostics).groupby(r.diagnostics["t"]).mean()
    detail += "; Jacobians individually in the band: " + _per_t(share, "{:.2f}")
    return Result(worst, detail, _all(c, lambda v: (v >= lo) & (v <= hi)))


def _r_t_grows(r: RunTables) -> Result:
    med = r.diagnostics.groupby("t")["local_dim"].median()
    rho = _spearman(med.index.to_numpy(), med.to_numpy())
    ok = np.isfinite(rho) and rho <= -0.8 and med.iloc[0] > med.iloc[-1]
    return Result(rho, "median r_t " + _per_t(med), HOLDS if ok else FAILS)


def _r_t_spreads(r: RunTables) -> Result:
    g = r.diagnostics.groupby("t")["local_dim"]
    iqr = g.quantile(0.75) - g.quantile(0.25)
    rho = _spearman(iqr.index.to_numpy(), iqr.to_numpy())
    ok = np.isfinite(rho) and rho <= -0.8 and iqr.iloc[0] > iqr.iloc[-1]
    return Result(rho, "IQR of r_t " + _per_t(iqr), HOLDS if ok else FAILS)


def _min_floor_ratio(r: RunTables) -> pd.Series:
    """Per Jacobian: the smallest 1/s_i over sigma_t^2."""
    s = r.spectra
    ratio = s["inverse_singular_value"] / s["sigma"] ** 2
    return ratio.groupby([s["t"], s["image"]]).min()


def _floor_lower_bound(r: RunTables) -> Result:
    m = _min_floor_ratio(r)
    ok = m >= 1 - r.kappa
    share = ok.groupby(level="t").mean()
    below = (~ok).groupby(level="t").sum()
    detail = "; ".join(f"t={t:g}: {share[t]:.2f} ({int(below[t])} below, min {m[t].min():.3f})" for t in share.index)
    return Result(float(ok.mean()), detail, HOLDS if ok.mean() >= 0.95 else FAILS)


def _cos_high_ranks(r: RunTables) -> Result:
    med = r.diagnostics.groupby("t")["cos_uv_mean_top_half"].median()
    return Result(float(med.max()), "median " + _per_t(med), _all(med, lambda v: v <= -0.9))


def _abs_cos_first_r(r: RunTables) -> pd.Series:
    s = r.spectra.merge(r.diagnostics[["t", "image", "local_dim"]], on=["t", "image"])
    s = s[s["rank"] <= s["local_dim"]]
    return s.assign(abs_cos=s["cos_uv"].abs()).groupby(["t", "image"])["abs_cos"].mean()


def _uv_misaligned(r: RunTables) -> Result:
    med = _abs_cos_first_r(r).groupby(level="t").median()
    if med.empty:
        return Result(float("nan"), "r_t = 0 everywhere", NOT_MEASURABLE)
    return Result(float(med.max()), "median " + _per_t(med), _all(med, lambda v: v <= 0.5))


def _misalignment_rank(r: RunTables) -> Result:
    """k_t: the first rank from which the median cos(u_i, v_i) over Jacobians stays <= -0.9 up to rank
    D - ceil(D/100). The top 1 % of ranks (the largest singular values, where an expanding direction with
    cos = +1 sorts) are left out, so a stray top rank does not move k_t to D."""
    med = r.spectra.groupby(["t", "rank"])["cos_uv"].median()
    D = image_dim(r)
    top = D - int(np.ceil(D / 100))
    k = {}
    for t, m in med.groupby(level="t"):
        bad = np.flatnonzero(m.to_numpy()[:top] > -0.9)  # 0-based ranks not anti-aligned
        k[t] = int(bad[-1]) + 2 if len(bad) else 1
    k = pd.Series(k)
    r_med = r.diagnostics.groupby("t")["local_dim"].median()
    detail = "; ".join(f"t={t:g}: k_t={k[t]} (median r_t {r_med[t]:g})" for t in k.index)
    return Result(float(k.max()), detail, _all(k, lambda v: (v > 1) & (v <= D // 2)))


def _overlap(pair: str) -> Callable[[RunTables], Result]:
    def compute(r: RunTables) -> Result:
        med = r.diagnostics.groupby("t")[f"Phi_{pair}_at_r"].median()
        return Result(float(med.min()), "median " + _per_t(med), _all(med, lambda v: v >= 0.5))
    return compute


def _w_misaligned(r: RunTables) -> Result:
    if r.features is None:
        return Result(float("nan"), "no feature vectors", NOT_MEASURABLE)
    f = r.features.astype(np.float64)
    idx = {n: FEATURE_NAMES.index(n) for n in ("v_minus", "u_minus", "w_zero", "w_plus")}
    f = f / np.linalg.norm(f, axis=-1, keepdims=True)
    cos = np.max([np.abs(np.sum(f[:, :, idx[a]] * f[:, :, idx[b]], axis=-1))
                  for a in ("w_zero", "w_plus") for b in ("v_minus", "u_minus")], axis=0)  # (n_images, n_t)
    med = pd.Series(np.median(cos, axis=0), index=np.asarray(r.feature_t, dtype=float))
    return Result(float(med.max()), "median max|cos| " + _per_t(med), _all(med, lambda v: v < 0.5))


def _off_manifold_background(r: RunTables) -> Result:
    if r.features is None or r.stroke is None:
        return Result(float("nan"), "no feature vectors or samples", NOT_MEASURABLE)
    stroke = r.stroke[np.asarray(r.feature_images)].astype(bool)  # (n_images, D)
    background = 1.0 - stroke.mean(axis=1)  # share of pixels off the stroke
    rel = []
    for name in ("u_plus", "v_plus"):
        v = r.features[:, :, FEATURE_NAMES.index(name)].astype(np.float64) ** 2
        outside = (v * ~stroke[:, None, :]).sum(-1) / v.sum(-1)  # (n_images, n_t)
        rel.append(outside / background[:, None])
    med = pd.Series(np.median(np.mean(rel, axis=0), axis=0), index=np.asarray(r.feature_t, dtype=float))
    return Result(float(med.min()), "median " + _per_t(med), _all(med, lambda v: v >= 0.9))


def _denoiser_psd(r: RunTables) -> Result:
    ok = r.diagnostics["denoiser_min"] >= -r.kappa  # no eigenvalue of I + sigma^2 J~ below -kappa
    share = ok.groupby(r.diagnostics["t"]).mean()
    return Result(float(ok.mean()), "share " + _per_t(share, "{:.2f}"), HOLDS if ok.mean() >= 0.95 else FAILS)


# --- where the field is non-conservative (docs/nonconservative.md): three measures, two surfaces ------------

#: (b)'s threshold: the on-manifold block at least this many times as asymmetric, for its size, as any block
#: that involves the off-manifold directions (1 = all blocks equally asymmetric).
RELATIVE_RATIO = 2.0


def _missing(table: pd.DataFrame, columns: tuple[str, ...], where: str) -> str | None:
    lacking = [c for c in columns if c not in table.columns]
    return f"{where} lacks {', '.join(lacking)} (written by a newer analysis)" if lacking else None


def _at_least(values: pd.Series, threshold: float) -> str:
    """HOLDS when every value is >= threshold (+inf included: a block ratio with nothing to divide by)."""
    v = values.to_numpy(dtype=float)
    return HOLDS if len(v) and not np.isnan(v).any() and (v >= threshold).all() else FAILS


def _mnist_skew(column: str, threshold: float, iso: bool) -> Callable[[RunTables], Result]:
    """A row judged on the median over Jacobians of diagnostics[column] per t, >= threshold at every t."""
    def compute(r: RunTables) -> Result:
        d = r.diagnostics
        lacking = _missing(d, (column,), "diagnostics")
        if lacking:
            return Result(float("nan"), lacking, NOT_MEASURABLE)
        asym = d.groupby("t")["asymmetry"].median()
        med = d.groupby("t")[column].median()
        ref = ((d["local_dim"] / image_dim(r)) ** 2).groupby(d["t"]).median()
        detail = "; ".join(f"t={t:g}: {med[t]:.3g} (" + (f"isotropic {ref[t]:.3f}, " if iso else "")
                           + f"asymmetry {asym[t]:.2g})" for t in med.index)
        if (asym < 1e-6).all():
            return Result(0.0, detail, FAILS, "the field is conservative (J symmetric)")
        return Result(float(med.min()), detail, _at_least(med, threshold))
    return compute


def _toy_skew(column: str, threshold: float, reference: str, extra: tuple[str, str] | None = None
              ) -> Callable[[RunTables], Result]:
    """A toy row judged on toy/summary.csv's per-t median `column`, >= threshold at every t; `extra` = (column,
    label) of a second statistic shown in the detail only."""
    def compute(r: RunTables) -> Result:
        if r.toy is None:
            return Result(float("nan"), "no toy run", NOT_MEASURABLE)
        lacking = _missing(r.toy, (column,) + ((extra[0],) if extra else ()), "toy/summary.csv")
        if lacking:
            return Result(float("nan"), lacking + ": rerun analyse_toy", NOT_MEASURABLE)
        toy = r.toy.set_index("t")
        med = toy[column]
        detail = "median " + _per_t(med, "{:.3g}") + f" ({reference})"
        if extra:
            detail += f"; {extra[1]} " + _per_t(toy[extra[0]], "{:.2g}")
        if "asymmetry_median" in toy and (toy["asymmetry_median"] < 1e-6).all():
            return Result(0.0, detail, FAILS, "the field is conservative (J symmetric)")
        return Result(float(med.min()), detail, _at_least(med, threshold))
    return compute


_non_conservative_within = _mnist_skew("skew_share_inside", 0.5, iso=True)
_toy_tangent = _toy_skew("tangent_share_median", 0.5, "isotropic 1/3")


def vae_converged(records: list[dict], *, min_epochs: int = 10, window: int = 5,
                  gamma_tol: float = 0.05) -> tuple[bool, str]:
    """Whether a Gaussian VAE with decoder scale gamma has converged, from its per-epoch metrics
    (`score_geometry.vae.train_vae`'s metrics.jsonl records): at least `min_epochs` epochs; gamma within
    `gamma_tol` (5 %, in log) of sqrt(MSE) of the training batches at the end (gamma's optimum given the
    decoder); and the count of latent dims with posterior variance < threshold steady: over the last `window`
    epochs its range, and the change of its mean from the `window` epochs before, both <= max(1, 5 %). The count
    is the held-out one (``heldout_active_dims``) when recorded, else the training batches' (``active_dims``).
    At initialisation gamma = 1 and MSE ~ 1, so the gamma test alone would pass an untrained VAE; with
    ``vae.gamma: closed_form`` it holds by construction and the count test decides."""
    if len(records) < max(min_epochs, 2 * window):
        return False, f"{len(records)} epochs < {max(min_epochs, 2 * window)}"
    last = records[-1]
    gamma, rmse = float(last["gamma"]), float(np.sqrt(last["mse"]))
    if abs(np.log(gamma / rmse)) > gamma_tol:
        return False, f"gamma {gamma:.3g} not within {gamma_tol:.0%} of sqrt(MSE) {rmse:.3g}"
    key = "heldout_active_dims" if "heldout_active_dims" in last else "active_dims"
    where = "held-out" if key == "heldout_active_dims" else "training"
    dims = np.array([float(rec[key]) for rec in records[-2 * window:]])
    now, before = dims[window:], dims[:window]
    tol = max(1.0, 0.05 * now[-1])
    if np.ptp(now) > tol or abs(now.mean() - before.mean()) > tol:
        return False, (f"{where} count still moving over the last {2 * window} epochs "
                       f"({before.mean():.1f} -> {now.mean():.1f}, last {window}: {now.min():.1f}-{now.max():.1f})")
    return True, f"gamma {gamma:.3g} ~ sqrt(MSE) {rmse:.3g}, {where} count steady at {now[-1]:.1f}"


def _vae_below(r: RunTables) -> Result:
    if r.vae_dims is None or not r.vae_metrics:
        return Result(float("nan"), "no VAE in this run", NOT_MEASURABLE)
    d = r.vae_dims
    clean = d[(d["condition"] == "clean") & (d["dataset"] == "heldout")]["local_dim"].median()
    t0 = r.diagnostics["t"].min()
    r_t = r.diagnostics.loc[r.diagnostics["t"] == t0, "local_dim"].median()
    converged, why = vae_converged(r.vae_metrics)
    detail = f"VAE median {clean:g} vs median r_t {r_t:g} at t={t0:g}; {len(r.vae_metrics)} epochs, {why}"
    if not converged:
        return Result(float(clean / r_t), detail, NOT_MEASURABLE, "VAE not shown converged")
    return Result(float(clean / r_t), detail, HOLDS if clean <= 0.5 * r_t else FAILS)


CLAIMS: tuple[Claim, ...] = (
    Claim("calibration", "§3.2 (precondition)", "the off-manifold gain is 1/σ_t², so r_t's threshold (1+κ)σ_t² "
          "measures geometry", "median over Jacobians of (1/s_i)/σ_t² over the top half of ranks, per source and t",
          "every median in [0.95, 1.10]", False, _calibration, *CALIBRATION_BAND),
    Claim("r_t_grows", "§3.2, Fig. 3", "the local dimension r_t increases as t decreases",
          "Spearman ρ(t, median r_t) over the analysed times", "ρ ≤ −0.8 and r_t(min t) > r_t(max t)", True,
          _r_t_grows, upper=-0.8),
    Claim("r_t_spreads", "§3.2, Fig. 3", "r_t becomes more varied between sequences as t decreases",
          "Spearman ρ(t, IQR of r_t)", "ρ ≤ −0.8 and IQR(min t) > IQR(max t)", True, _r_t_spreads,
          upper=-0.8),
    Claim("floor_lower_bound", "§3.2", "σ_t² lower-bounds the inverse singular values",
          "share of Jacobians whose smallest 1/s_i is ≥ (1 − κ)σ_t² (and how many are below)", "share ≥ 0.95",
          False, _floor_lower_bound, lower=0.95, full_spectrum=True),
    Claim("cos_minus_one_high_ranks", "§3.1, Fig. 3 top", "u_i and v_i differ by a sign at high ranks",
          "median over Jacobians of the mean cos(u_i, v_i) over the top half of ranks", "≤ −0.9 at every t",
          False, _cos_high_ranks, upper=-0.9, full_spectrum=True),
    Claim("uv_misaligned_low_ranks", "§3.1, Fig. 3 top", "u_i and v_i are not aligned at low ranks",
          "median over Jacobians of the mean |cos(u_i, v_i)| over the first r_t ranks (1 for a symmetric J)",
          "≤ 0.5 at every t", True, _uv_misaligned, upper=0.5),
    Claim("misalignment_rank", "§3.1, Fig. 3 top", "misalignment is confined to the low ranks",
          "k_t: the first rank from which the median cos(u_i, v_i) stays ≤ −0.9 (top 1 % of ranks left out)",
          "1 < k_t ≤ D/2 at every t", False,
          _misalignment_rank, lower=1, full_spectrum=True),
    Claim("overlap_uv", "§3.3, Fig. 4", "the right and left singular subspaces overlap within the nontrivial ranks",
          "median over Jacobians of Φ^{u,v} at n = r_t", "≥ 0.5 at every t", True, _overlap("uv"), lower=0.5),
    Claim("overlap_uw", "§3.3, Fig. 4", "the left singular and eigen-subspaces overlap",
          "median over Jacobians of Φ^{u,w} at n = r_t", "≥ 0.5 at every t", True, _overlap("uw"), lower=0.5),
    Claim("overlap_vw", "§3.3, Fig. 4", "the right singular and eigen-subspaces overlap",
          "median over Jacobians of Φ^{v,w} at n = r_t", "≥ 0.5 at every t", True, _overlap("vw"), lower=0.5),
    Claim("w_misaligned", "§3.1, Fig. 2", "w₀ and w₊ are not aligned with the singular vectors u₋, v₋",
          "median over Jacobians of max |cos| between {w₀, w₊} and {u₋, v₋}", "< 0.5 at every t", False,
          _w_misaligned, upper=0.5),
    Claim("off_manifold_background", "§3.1, Fig. 2", "u₊ and v₊ are off-manifold: high-frequency background",
          "share of ‖u₊‖², ‖v₊‖² outside the digit's stroke (final sample > 0), over the background pixel share "
          "(1 = spread like white noise)", "median ≥ 0.9 at every t", False, _off_manifold_background,
          lower=0.9),
    Claim("denoiser_psd", "App. C", "I + σ_t²J̃ is positive semi-definite (the denoiser's Jacobian)",
          "share of Jacobians with no eigenvalue of I + σ_t²J̃ below −κ", "share ≥ 0.95", False, _denoiser_psd, lower=0.95),
    Claim("non_conservative_within", "§3.3, §4", "the field is non-conservative within the manifold",
          "(a) median share of ‖H‖², H = (J − Jᵀ)/2, inside the first r_t right singular directions",
          "≥ 0.5 at every t (isotropic H: (r_t/D)²)", True, _non_conservative_within, lower=0.5),
    Claim("non_conservative_within_w", "§3.3, §4", "the field is non-conservative within the manifold",
          "(a) median share of ‖H‖² inside the first r_t eigenvectors w of J̃ (smallest |eigenvalue|)",
          "≥ 0.5 at every t (isotropic H: (r_t/D)²)", True, _mnist_skew("skew_share_w_inside", 0.5, iso=True),
          lower=0.5, full_spectrum=True),
    Claim("non_conservative_within_relative", "§3.3, §4", "the field is non-conservative within the manifold "
          "and close to conservative off it", "(b) median over Jacobians of ρ = (‖PHP‖/‖PJP‖) / max(cross, "
          "off-manifold block's ‖block(H)‖/‖block(J)‖), P = first r_t right singular directions",
          f"ρ ≥ {RELATIVE_RATIO:g} at every t (equally asymmetric blocks: 1)", True,
          _mnist_skew("skew_rel_ratio", RELATIVE_RATIO, iso=False), lower=RELATIVE_RATIO, full_spectrum=True),
    Claim("non_conservative_within_relative_w", "§3.3, §4", "the field is non-conservative within the manifold "
          "and close to conservative off it", "(b) the same ρ with P = first r_t eigenvectors w of J̃",
          f"ρ ≥ {RELATIVE_RATIO:g} at every t (equally asymmetric blocks: 1)", True,
          _mnist_skew("skew_rel_ratio_w", RELATIVE_RATIO, iso=False), lower=RELATIVE_RATIO,
          full_spectrum=True),
    Claim("toy_tangent_skew", "Fig. 1", "on the toy surface the skew part acts within the tangent plane",
          "(a) median share of ‖H‖² in the tangent–tangent block", "≥ 0.5 at every t (isotropic: 1/3)", False,
          _toy_tangent, lower=0.5),
    Claim("toy_tangent_skew_relative", "Fig. 1", "on the toy surface the field is non-conservative along the "
          "surface and close to conservative across it", "(b) median over points of ‖PᵀHP‖/‖PᵀJP‖ over the "
          "cross blocks' ‖H‖/‖J‖ (the 1×1 normal block has no skew part)",
          f"≥ {RELATIVE_RATIO:g} at every t (equally asymmetric blocks: 1)", False,
          _toy_skew("rel_ratio_median", RELATIVE_RATIO, "equal: 1"), lower=RELATIVE_RATIO),
    Claim("toy_tangent_curl", "Fig. 1", "on the toy surface the learned field's tangential part circulates (the "
          "curl of Fig. 1's right panels) more than the field rotates across the surface",
          "(c) median over points of |n·curl g| / |curl g|, n·curl g = the curl of the tangential part on the "
          "sphere", "≥ 1/√2 at every t (isotropic: median 1/2)", False,
          _toy_skew("curl_tangent_rel_curl_median", 2**-0.5, "isotropic 0.5",
                    ("curl_tangent_rel_jac_median", "|n·curl g|/‖J‖_F")), lower=2**-0.5),
    Claim("vae_below_r_t", "App. B", "a VAE's local dimension is far below the score model's r_t",
          "median VAE count (clean, held-out digits) / median r_t at the smallest t; only for a converged VAE",
          "≤ 0.5", True, _vae_below, upper=0.5),
)


# --- r_t's definitions: a claim that uses r_t is judged under each, and holds robustly only under all -------

PAPER = "paper"


def with_r_t(r: RunTables, *, floor: str = "paper", kappa: float | None = None) -> RunTables:
    """`r` with r_t, and everything the claims read at r_t (`analysis.AT_R_FIELDS`), taken from the local_dims
    table's definition (`floor`: paper | own, `kappa`; None = the run's kappa) instead of the headline one."""
    kappa = r.kappa if kappa is None else kappa
    suffix = FLOORS[floor]
    ld = r.local_dims[np.isclose(r.local_dims["kappa"], kappa)]
    if ld.empty:
        raise KeyError(f"local_dims has no rows at kappa = {kappa:g}")
    columns = {f"local_dim{suffix}": "local_dim", **{f"{c}{suffix}": c for c in AT_R_FIELDS}}
    at_r = ld[["image", "t", *columns]].rename(columns=columns)
    d = r.diagnostics.drop(columns=[c for c in columns.values() if c in r.diagnostics])
    d = d.merge(at_r, on=["image", "t"], how="left", validate="one_to_one")
    return replace(r, diagnostics=d, kappa=kappa)


def only_in_band(r: RunTables) -> RunTables:
    """`r` restricted to the Jacobians whose own calibration ratio is inside the band."""
    return replace(r, diagnostics=r.diagnostics[in_band(r.diagnostics)])


def r_t_definitions(r: RunTables, kappa_sweep: Sequence[float] = ()) -> dict[str, tuple[RunTables, bool]]:
    """The r_t definitions a claim that uses r_t is judged under, by name: (the run's tables under it, whether
    the calibration gate applies). ``paper`` (the paper's threshold (1 + κ)σ_t², every Jacobian; gated: it
    means geometry only where the median floor is calibrated), ``own_floor`` (each Jacobian's own floor, every
    Jacobian; not gated: the floor is each Jacobian's own), ``paper_in_band`` and ``own_floor_in_band`` (the
    Jacobians individually inside the band only; not gated), and ``kappa=<κ>`` for every other κ of the sweep
    (the paper's threshold; gated). Without a local_dims table: ``paper`` and ``paper_in_band`` only."""
    defs = {PAPER: (r, True), "paper_in_band": (only_in_band(r), False)}
    if r.local_dims is None or "local_dim_own_floor" not in r.local_dims:
        return defs
    own = with_r_t(r, floor="own")
    defs |= {"own_floor": (own, False), "own_floor_in_band": (only_in_band(own), False)}
    for kappa in kappa_sweep:
        if not np.isclose(kappa, r.kappa) and np.isclose(r.local_dims["kappa"], kappa).any():
            defs[f"kappa={kappa:g}"] = (with_r_t(r, kappa=kappa), True)
    return defs


def _judge(c: Claim, r: RunTables, gated: bool, calibrated: bool) -> tuple[Result, str]:
    """A claim's result under one definition and its verdict (the calibration gate applied where `gated`)."""
    if r.diagnostics.empty:
        return Result(float("nan"), "no Jacobian", NOT_MEASURABLE), NOT_MEASURABLE
    if c.full_spectrum and matrix_free(r.diagnostics):
        return Result(float("nan"), NEEDS_FULL_SPECTRUM, NOT_MEASURABLE), NOT_MEASURABLE
    res = c.compute(r)
    if c.uses_r_t and gated and not calibrated and res.verdict != NOT_MEASURABLE:
        return res, NOT_MEASURABLE
    return res, res.verdict


def robustness(verdicts: Mapping[str, str]) -> str:
    """One claim's verdicts under every r_t definition, read together: "holds robustly" only when it holds
    under all of them; otherwise which definitions changed it."""
    holds = [k for k, v in verdicts.items() if v == HOLDS]
    if len(holds) == len(verdicts):
        return "holds robustly"
    if not holds:
        fails = [k for k, v in verdicts.items() if v == FAILS]
        return "fails under every definition" if len(fails) == len(verdicts) else (
            "not measurable under " + ", ".join(k for k, v in verdicts.items() if v == NOT_MEASURABLE)
            + ("; fails under the rest" if fails else ""))
    return "holds only under " + ", ".join(holds) + "; not under " + ", ".join(k for k in verdicts if k not in holds)


def _origin(claim_id: str, parameterisation: str) -> str:
    if parameterisation == "oracle":
        return "closed form (oracle)"
    if parameterisation == "x0" and claim_id in STRUCTURAL_UNDER_X0:
        return "structural under x₀"
    return "learned"


def claims_table(r: RunTables, *, kappa_sweep: Sequence[float] = ()) -> pd.DataFrame:
    """One row per claim: id, section, claim, statistic, threshold, lower, upper (the threshold's numbers, see
    `Claim`), value, detail, verdict (under the paper's r_t, every Jacobian), origin, note; and, for the claims
    that use r_t, the verdict under each other definition of `r_t_definitions` (``verdict_<name>``; the κ sweep
    folded into ``verdict_kappa_sweep``: holds only if it holds at every κ), ``value_own_floor``,
    ``in_band_share`` (the Jacobians individually inside the band) and ``robustness`` (`robustness`; for a
    claim that does not use r_t, its verdict)."""
    defs = r_t_definitions(r, kappa_sweep)
    calibrated = _calibration(r).verdict == HOLDS
    share = float(in_band(r.diagnostics).mean()) if len(r.diagnostics) else float("nan")
    capped = int(r.diagnostics["capped"].eq(True).sum()) if "capped" in r.diagnostics else 0
    rows = []
    for c in CLAIMS:
        res, verdict = _judge(c, r, True, calibrated)
        note = res.note
        if verdict != res.verdict:
            note = f"calibration outside {CALIBRATION_BAND} (r_t would be {res.verdict})"
        if c.uses_r_t and capped and res.detail != NEEDS_FULL_SPECTRUM:
            note = "; ".join(filter(None, [note, f"r_t capped at jacobian.k_max (a lower bound) on {capped} "
                                                 f"of {len(r.diagnostics)} Jacobians"]))
        row = {"id": c.id, "section": c.section, "claim": c.claim, "statistic": c.statistic,
               "threshold": c.threshold, "lower": c.lower, "upper": c.upper, "value": res.value,
               "detail": res.detail, "verdict": verdict, "origin": _origin(c.id, r.parameterisation), "note": note}
        if c.uses_r_t:
            verdicts = {PAPER: verdict}
            for name, (tables, gated) in defs.items():
                if name != PAPER:
                    other, verdicts[name] = _judge(c, tables, gated, calibrated)
                    if name == "own_floor":
                        row["value_own_floor"] = other.value
            sweep = {k: v for k, v in verdicts.items() if k.startswith("kappa=")}
            row |= {f"verdict_{k}": v for k, v in verdicts.items() if k != PAPER and k not in sweep}
            if sweep:
                bad = [k for k, v in sweep.items() if v != HOLDS]
                row["verdict_kappa_sweep"] = HOLDS if not bad else FAILS if all(
                    v == FAILS for v in sweep.values()) else f"{FAILS} at " + ", ".join(bad)
            row["in_band_share"] = share
            row["robustness"] = robustness(verdicts)
        else:
            row["robustness"] = f"{verdict} (does not use r_t)"
        rows.append(row)
    return pd.DataFrame(rows)


def claims_markdown(table: pd.DataFrame, *, run: str) -> str:
    """The table as Markdown (value to 3 significant digits), headed by the verdict counts."""
    counts = table["verdict"].value_counts()
    head = f"# Claims of the paper, run `{run}`\n\n" + ", ".join(f"{counts.get(v, 0)} {v}"
                                                                 for v in (HOLDS, FAILS, NOT_MEASURABLE))
    t = table.assign(value=table["value"].map(lambda v: f"{v:.3g}"))
    cols = ["id", "section", "claim", "statistic", "threshold", "value", "verdict", "robustness", "origin",
            "detail", "note"]
    cols = [c for c in cols if c in t]
    return head + "\n\n" + t[cols].to_markdown(index=False) + "\n"
