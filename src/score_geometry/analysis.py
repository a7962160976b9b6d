"""From score Jacobians to the paper's tidy tables (§3, Eq. 1–2, Prop. 1, Appendix C).

`analyse_jacobians` runs `spectra.analyse_jacobian` on every (image, t) Jacobian of a shard and returns
long-format DataFrames plus the Fig. 2 feature vectors; `calibration_ratio` measures how well the model's
off-manifold Jacobian gain matches the ideal 1/sigma_t^2, which decides whether r_t means anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .spectra import RANK_SKEW_FIELDS, Spectrum, analyse_jacobian, floor_ratio, overlaps, sweep_ranks

# Fig. 2's columns, in the paper's order.
FEATURE_NAMES = ("v_minus", "u_minus", "w_zero", "w_plus", "u_plus", "v_plus", "w_minus")
PAIRS = ("uv", "uw", "vw")


#: The band a model's median calibration ratio must lie in at every t for r_t to measure geometry.
CALIBRATION_BAND = (0.95, 1.10)


def calibration_ratio(singular_values: np.ndarray, sigma: float) -> float:  # = spectra.floor_ratio
    """Median of (1/s_i) / sigma^2 over the top half of ranks (the largest singular values), ideal 1.00.

    For an exact score, off-manifold directions have s_i = 1/sigma^2; the paper's local dimension
    thresholds 1/s_i at (1 + kappa) sigma^2, so a ratio at or above 1 + kappa makes r_t count the
    off-manifold directions themselves (training error, up to "784 dimensions"), while a ratio below 1 (an
    over-contracting model) only moves borderline on-manifold ranks below the threshold and lowers r_t.
    The band the default config is held to is [0.95, 1.10] (docs/calibration.md).

    Args:
        singular_values: (D,) ascending.
    """
    return floor_ratio(singular_values, sigma)


def high_rank_floor_share(singular_values: np.ndarray, sigma: float, *, tol: float = 0.1) -> float:
    """Share of the top half of ranks whose 1/s_i lies within `tol` (relative) of sigma^2."""
    s = np.asarray(singular_values, dtype=np.float64)[len(singular_values) // 2:]
    with np.errstate(divide="ignore"):
        return float(np.mean(np.abs(1.0 / s / sigma**2 - 1.0) <= tol))


@dataclass(frozen=True)
class ShardAnalysis:
    """Tables (long format) and features of one shard of Jacobians.

    spectra: one row per (image, t, rank): singular_value, inverse_singular_value, cos_uv, eigval.
    local_dims: one row per (image, t, kappa): local_dim (the paper's r_t), local_dim_own_floor (against the
        Jacobian's own floor) and, for each, what the claims read at that r_t (`r_definitions`).
    overlaps: one row per (image, t, pair, n): Phi.
    diagnostics: one row per (image, t): local_dim, asymmetry, skew shares, trace check, Appendix-C
        fraction, calibration ratio, high-rank floor share.
    features: (n_images, n_times, 7, D) float32, in `FEATURE_NAMES` order.
    """

    spectra: pd.DataFrame
    local_dims: pd.DataFrame
    overlaps: pd.DataFrame
    diagnostics: pd.DataFrame
    features: np.ndarray


def _keys(run: str, image: int, label: int, t: float, sigma: float) -> dict:
    return {"run": run, "image": image, "label": label, "t": t, "sigma": sigma}


#: The two floors r_t is counted against: the paper's sigma_t^2 and each Jacobian's own (`spectra.floor_ratio`);
#: a column of the local_dims table carries this suffix for the own floor.
FLOORS = {"paper": "", "own": "_own_floor"}
#: What a claim that uses r_t reads at r = r_t, per r_t definition (the local_dims table's columns).
AT_R_FIELDS = (*(f"Phi_{p}_at_r" for p in PAIRS), *RANK_SKEW_FIELDS)


def r_definitions(spec: Spectrum, kappas: Sequence[float], phis: dict[str, np.ndarray]) -> list[dict[str, float]]:
    """Per kappa: r_t against each floor (``local_dim``, ``local_dim_own_floor``) and what the claims read at that
    r_t (`AT_R_FIELDS`, suffixed per `FLOORS`). `phis`: the spectrum's `spectra.overlaps`. The skew measures come
    from ``spec.rank_skew``, so `spec` must have been analysed with ``sweep=kappas`` (`analyse_jacobians` does)."""
    rows = []
    for kappa in kappas:
        row = {}
        for (floor, suffix), r in zip(FLOORS.items(), sweep_ranks(spec.singular_values, spec.sigma, [kappa])[:, 0]):
            r = int(r)
            row[f"local_dim{suffix}"] = r
            for p in PAIRS:
                row[f"Phi_{p}_at_r{suffix}"] = float(phis[p][r - 1]) if r > 0 else float("nan")
            for name in RANK_SKEW_FIELDS:
                row[f"{name}{suffix}"] = spec.rank_skew[r][name] if r in spec.rank_skew else float("nan")
        rows.append(row)
    return rows


def _rank_tables(keys: dict, spec, phis: dict[str, np.ndarray]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The spectra and overlaps tables of one spectrum, one row per computed rank (all D for the exact route's
    `Spectrum`, 1..k for a matrix-free one): both routes' spectra have the same fields."""
    k = len(spec.singular_values)
    rank = np.arange(1, k + 1)
    with np.errstate(divide="ignore"):
        inverse = 1.0 / spec.singular_values
    spectra = pd.DataFrame({**{c: np.repeat(v, k) for c, v in keys.items()}, "rank": rank,
                            "singular_value": spec.singular_values, "inverse_singular_value": inverse,
                            "cos_uv": spec.cos_uv, "eigval": spec.eigvals})
    ov = pd.DataFrame({**{c: np.repeat(v, 3 * k) for c, v in keys.items()}, "pair": np.repeat(np.array(PAIRS), k),
                       "n": np.tile(rank, 3), "Phi": np.concatenate([phis[p] for p in PAIRS])})
    return spectra, ov


def analyse_spectrum_tables(spec: Spectrum, *, run: str, image: int, label: int, t: float,
                            kappa_sweep: Sequence[float]) -> tuple[dict[str, pd.DataFrame], np.ndarray]:
    """Tables and the 7 Fig. 2 features (7, D) of one analysed Jacobian."""
    D = spec.dim
    keys = _keys(run, image, label, t, spec.sigma)
    kappas = np.asarray(list(kappa_sweep), dtype=np.float64)
    phis = overlaps(spec)
    spectra, ov = _rank_tables(keys, spec, phis)
    local_dims = pd.DataFrame([{**keys, "kappa": k, **at_r} for k, at_r in zip(kappas, r_definitions(spec, kappas, phis))])
    r = spec.local_dim
    mean_phi_at_r = {f"Phi_{p}_at_r": float(phis[p][r - 1]) if r > 0 else float("nan") for p in PAIRS}
    diag = pd.DataFrame([{**keys, "kappa": spec.kappa, "local_dim": r,
                          "local_dim_own_floor": spec.local_dim_own_floor, "asymmetry": spec.asymmetry,
                          **spec.skew_fields, "trace": spec.trace,
                          "trace_diff": spec.trace_diff, "denoiser_min": spec.denoiser_min,
                          "denoiser_frac_negative": spec.denoiser_frac_negative,
                          "denoiser_frac_above_one": spec.denoiser_frac_above_one,
                          "calibration_ratio": calibration_ratio(spec.singular_values, spec.sigma),
                          "high_rank_floor_share": high_rank_floor_share(spec.singular_values, spec.sigma),
                          "cos_uv_mean_first_r": float(np.mean(spec.cos_uv[:r])) if r > 0 else float("nan"),
                          "cos_uv_mean_top_half": float(np.mean(spec.cos_uv[D // 2:])),
                          **mean_phi_at_r, "route": "exact", "dim": D}])
    features = np.stack([getattr(spec, name) for name in FEATURE_NAMES]).astype(np.float32)
    return {"spectra": spectra, "local_dims": local_dims, "overlaps": ov, "diagnostics": diag}, features


def lowrank_spectrum_tables(spec, *, run: str, image: int, label: int, t: float) -> dict[str, pd.DataFrame]:
    """The tables of `analyse_spectrum_tables` from a matrix-free spectrum (`geometry.lowrank.LowRankSpectrum`):
    the computed ranks 1..k only (spectra, overlaps), r_t per kappa of ``spec.sweep``, and the diagnostics
    that the route measures (``calibration_ratio`` is the estimated floor, with ``calibration_ratio_se``;
    ``trace``, ``asymmetry`` and ``skew_share_inside`` are estimates, with ``_se`` where they have one); the
    measures it does not compute (the other skew splits, the denoiser fractions, the top-half statistics) are
    NaN. ``route``, ``k``, ``capped`` (r_t at k is then a lower bound) and ``converged`` say how it was computed."""
    k = spec.rank
    keys = _keys(run, image, label, t, spec.sigma)
    phis = spec.overlaps()
    spectra, ov = _rank_tables(keys, spec, phis)
    nan = float("nan")

    def at(phi, r):
        return float(phi[r - 1]) if 0 < r <= len(phi) else nan

    rows = []
    for kappa, ranks in sorted(spec.sweep.items()):
        row = {**keys, "kappa": kappa}
        for (floor, suffix), r in zip(FLOORS.items(), ranks):
            row[f"local_dim{suffix}"] = int(r)
            row |= {f"Phi_{p}_at_r{suffix}": at(phis[p], int(r)) for p in PAIRS}
            row |= {f"{name}{suffix}": (spec.skew_share_inside_at(int(r)) if name == "skew_share_inside" else nan)
                    for name in RANK_SKEW_FIELDS}
        rows.append(row)
    r = spec.local_dim
    exact_only = ("skew_share_outside", "skew_share_cross", "skew_rel_inside", "skew_rel_cross", "skew_rel_outside",
                  "skew_rel_ratio", "skew_share_w_inside", "skew_share_w_cross", "skew_share_w_outside",
                  "skew_rel_w_inside", "skew_rel_w_cross", "skew_rel_w_outside", "skew_rel_ratio_w", "trace_diff",
                  "denoiser_frac_negative", "denoiser_frac_above_one", "high_rank_floor_share",
                  "cos_uv_mean_top_half")
    diag = pd.DataFrame([{**keys, "kappa": spec.kappa, "local_dim": r, "local_dim_own_floor": spec.local_dim_own_floor,
                          "asymmetry": spec.asymmetry, "skew_share_inside": spec.skew_share_inside,
                          "skew_share_inside_se": spec.skew_share_inside_se, "trace": spec.trace,
                          "trace_se": spec.trace_se, "denoiser_min": 1.0 + spec.sigma**2 * spec.eig_min,
                          "calibration_ratio": spec.floor_ratio, "calibration_ratio_se": spec.floor_ratio_se,
                          "cos_uv_mean_first_r": float(np.mean(spec.cos_uv[:r])) if 0 < r <= k else nan,
                          **{f"Phi_{p}_at_r": at(phis[p], r) for p in PAIRS},
                          **dict.fromkeys(exact_only, nan),
                          "route": "lowrank", "dim": spec.dim, "k": k, "capped": spec.capped,
                          "converged": spec.converged, "n_products": spec.n_products}])
    return {"spectra": spectra, "local_dims": pd.DataFrame(rows), "overlaps": ov, "diagnostics": diag}


def analyse_lowrank(spectra, *, images: Sequence[int], labels: Sequence[int], t: Sequence[float],
                    run: str) -> ShardAnalysis:
    """`analyse_jacobians` for matrix-free spectra (``spectra[i][j]``, `geometry.lowrank.lowrank_at_times` or
    `geometry.lowrank.unpack_spectra`): the tables of `lowrank_spectrum_tables`, features (n, T, 7, D) float32."""
    n_img, n_t = len(spectra), len(spectra[0]) if spectra else 0
    tables: dict[str, list[pd.DataFrame]] = {k: [] for k in ("spectra", "local_dims", "overlaps", "diagnostics")}
    D = spectra[0][0].dim if n_img and n_t else 0
    features = np.empty((n_img, n_t, len(FEATURE_NAMES), D), dtype=np.float32)
    for i in range(n_img):
        for j in range(n_t):
            spec = spectra[i][j]
            for k, df in lowrank_spectrum_tables(spec, run=run, image=int(images[i]), label=int(labels[i]),
                                                 t=float(t[j])).items():
                tables[k].append(df)
            features[i, j] = np.stack([getattr(spec, name) for name in FEATURE_NAMES])
    return ShardAnalysis(**{k: pd.concat(v, ignore_index=True) for k, v in tables.items()}, features=features)


def analyse_shard(datasets, *, labels: Sequence[int], run: str, kappa: float, kappa_sweep: Iterable[float],
                  progress: bool = True) -> ShardAnalysis:
    """One Jacobian stage's output, either route: D x D Jacobians (``J`` (n, T, D, D), `analyse_jacobians`) or
    packed matrix-free spectra (`geometry.lowrank.pack_spectra`, `analyse_lowrank`: r_t at the kappas the stage
    computed, those of the sweep at or above `kappa`); with ``images`` (n,), ``t``, ``sigma`` (T,)."""
    from .geometry.lowrank import is_packed, unpack_spectra

    if is_packed(datasets):
        stored = np.unique(np.asarray(datasets["kappa"], dtype=np.float64))
        sweep = {round(float(k), 12) for k in datasets["sweep_kappas"]}
        wanted = {round(float(k), 12) for k in (kappa, *kappa_sweep) if k >= kappa}
        if not (len(stored) == 1 and np.isclose(stored[0], kappa, rtol=0, atol=1e-12)) or not wanted <= sweep:
            raise ValueError(f"these matrix-free spectra were computed at kappa {stored.tolist()} with the sweep's "
                             f"{sorted(sweep)}, not at kappa {kappa:g} with {sorted(wanted)}: recompute them (the "
                             "Jacobian stage) with this analysis section")
        return analyse_lowrank(unpack_spectra(datasets), images=datasets["images"], labels=labels, t=datasets["t"],
                               run=run)
    return analyse_jacobians(datasets["J"], images=datasets["images"], labels=labels, t=datasets["t"],
                             sigma=datasets["sigma"], run=run, kappa=kappa, kappa_sweep=kappa_sweep,
                             progress=progress)


def analyse_jacobians(J: np.ndarray, *, images: Sequence[int], labels: Sequence[int], t: Sequence[float],
                      sigma: Sequence[float], run: str, kappa: float, kappa_sweep: Iterable[float],
                      progress: bool = True) -> ShardAnalysis:
    """Analyse a block of Jacobians.

    Args:
        J: (n_images, n_times, D, D) score Jacobians.
        images, labels: (n_images,) global image indices and their (classifier-predicted) labels.
        t, sigma: (n_times,) times and noise std.
        kappa: slack of the headline local dimension r_t; kappa_sweep: the kappas of the sweep table.
    """
    n_img, n_t = J.shape[:2]
    kappa_sweep = list(kappa_sweep)
    tables: dict[str, list[pd.DataFrame]] = {k: [] for k in ("spectra", "local_dims", "overlaps", "diagnostics")}
    features = np.empty((n_img, n_t, len(FEATURE_NAMES), J.shape[-1]), dtype=np.float32)
    bar = tqdm(total=n_img * n_t, desc="spectra", disable=not progress, mininterval=5)
    for i in range(n_img):
        for j in range(n_t):
            spec = analyse_jacobian(J[i, j], float(sigma[j]), kappa=kappa, sweep=kappa_sweep)
            tabs, features[i, j] = analyse_spectrum_tables(spec, run=run, image=int(images[i]), label=int(labels[i]),
                                                           t=float(t[j]), kappa_sweep=kappa_sweep)
            for k, df in tabs.items():
                tables[k].append(df)
            bar.update(1)
    bar.close()
    return ShardAnalysis(**{k: pd.concat(v, ignore_index=True) for k, v in tables.items()}, features=features)


def calibration_summary(diagnostics: pd.DataFrame) -> pd.DataFrame:
    """Per t: n, median calibration ratio and quartiles, median r_t, and whether the median lies in
    `CALIBRATION_BAND` (r_t measures geometry only then; docs/calibration.md)."""
    g = diagnostics.groupby(["t", "sigma"], as_index=False, sort=True)
    out = g.agg(n=("calibration_ratio", "size"), calibration_ratio=("calibration_ratio", "median"),
                calibration_ratio_q25=("calibration_ratio", lambda s: s.quantile(0.25)),
                calibration_ratio_q75=("calibration_ratio", lambda s: s.quantile(0.75)),
                local_dim_median=("local_dim", "median"))
    lo, hi = CALIBRATION_BAND
    return out.assign(in_band=out["calibration_ratio"].between(lo, hi))


def calibration_tables(*, model: pd.DataFrame, heldout: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-Jacobian calibration rows of both sources, and their per-(source, t) summary.

    Args:
        model: diagnostics of the model's own sampled x_t (from `analyse_jacobians`).
        heldout: diagnostics of forward-noised held-out real digits.

    Returns:
        table: run, source (``model_samples`` | ``heldout_noisy``), image, label, t, sigma, calibration_ratio,
            high_rank_floor_share, local_dim.
        summary: per source and t: n, median calibration ratio and its quartiles, median r_t.
    """
    cols = ["run", "image", "label", "t", "sigma", "calibration_ratio", "high_rank_floor_share", "local_dim"]
    table = pd.concat([model[cols].assign(source="model_samples"), heldout[cols].assign(source="heldout_noisy")],
                      ignore_index=True)[["run", "source", *cols[1:]]]
    g = table.groupby(["source", "t", "sigma"], as_index=False, sort=True)
    summary = g.agg(n=("calibration_ratio", "size"),
                 calibration_ratio=("calibration_ratio", "median"),
                 calibration_ratio_q25=("calibration_ratio", lambda s: s.quantile(0.25)),
                 calibration_ratio_q75=("calibration_ratio", lambda s: s.quantile(0.75)),
                 local_dim_median=("local_dim", "median"))
    return table, summary


def calibration_from_jacobians(heldout: dict, model_diagnostics: pd.DataFrame, *, run: str,
                               kappa: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Analyse the held-out Jacobians (J, or packed matrix-free spectra, with images, labels, t, sigma as written
    by `stages.heldout_jacobians`) and compare them with the model's own diagnostics (`calibration_tables`)."""
    res = analyse_shard(heldout, labels=heldout["labels"], run=run, kappa=kappa, kappa_sweep=[kappa])
    return calibration_tables(model=model_diagnostics, heldout=res.diagnostics)


def floor_error_spearman(diagnostics: pd.DataFrame, column: str = "local_dim") -> float:
    """Spearman correlation, over the Jacobians of `diagnostics` (one t), between each Jacobian's floor error (its
    calibration ratio) and `column` (a local dimension): how much of that r_t's spread across images is the
    spread of the floor's own error rather than geometry. NaN for fewer than 3 Jacobians or a constant column."""
    from scipy.stats import spearmanr

    x, y = diagnostics["calibration_ratio"].to_numpy(float), diagnostics[column].to_numpy(float)
    if len(x) < 3 or not np.ptp(x) > 0 or not np.ptp(y) > 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def summary_table(diagnostics: pd.DataFrame, overlaps: pd.DataFrame) -> pd.DataFrame:
    """Per t, the numbers a reader checks the paper against (one row per t).

    Columns: t, sigma, n_images, r_t median / q25 / q75 / mean, the own-floor r_t's median / q25 / q75 (where
    analysed), each r_t's Spearman correlation with the floor error over images (`floor_error_spearman`),
    cos_uv mean over the first r_t ranks and over
    the top half of ranks, share of top-half ranks with 1/s_i within 10% of sigma^2, Phi^{uv,uw,vw} (mean
    over images) at n = the mean r_t, asymmetry, skew share inside the first r_t directions, calibration.
    """
    rows = []
    for t, d in diagnostics.groupby("t", sort=True):
        r_mean = float(d["local_dim"].mean())
        n_at = max(1, int(round(r_mean)))
        o = overlaps[(overlaps["t"] == t) & (overlaps["n"] == n_at)]
        rows.append({
            "t": t, "sigma": float(d["sigma"].iloc[0]), "n_images": len(d),
            "r_t_median": float(d["local_dim"].median()), "r_t_q25": float(d["local_dim"].quantile(0.25)),
            "r_t_q75": float(d["local_dim"].quantile(0.75)), "r_t_mean": r_mean,
            **({"r_t_own_floor_median": float(d["local_dim_own_floor"].median()),
                "r_t_own_floor_q25": float(d["local_dim_own_floor"].quantile(0.25)),
                "r_t_own_floor_q75": float(d["local_dim_own_floor"].quantile(0.75))}
               if "local_dim_own_floor" in d else {}),
            "r_t_floor_error_spearman": floor_error_spearman(d, "local_dim"),
            **({"r_t_own_floor_floor_error_spearman": floor_error_spearman(d, "local_dim_own_floor")}
               if "local_dim_own_floor" in d else {}),
            "cos_uv_first_r": float(d["cos_uv_mean_first_r"].mean()),
            "cos_uv_top_half": float(d["cos_uv_mean_top_half"].mean()),
            "floor_share_top_half": float(d["high_rank_floor_share"].mean()),
            **{f"Phi_{p}_at_mean_r": float(o.loc[o["pair"] == p, "Phi"].mean()) for p in PAIRS},
            "asymmetry": float(d["asymmetry"].mean()),
            "skew_share_inside": float(d["skew_share_inside"].mean()),
            "calibration_ratio": float(d["calibration_ratio"].median()),
        })
    return pd.DataFrame(rows)
