"""The list of local-dimension estimators: name -> function, the keys of the ``estimators:`` config section it
reads, and the label tables and figures call it by. The comparison table and figure derive from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

#: What an estimator needs, hence its signature (one per kind, so estimators of a kind swap freely):
#: "neighbours": fn(points (N, D), reference (M, D), cfg) -> (N,) local dims of clean points among the reference
#:     cloud (every held-out digit among the training digits; condition "clean");
#: "score": fn(score_fn, x0 (n, *S), cfg, *, sde, generator) -> [(t, (n,) local dims), ...] from the score model
#:     at clean points (the first estimators.n_points held-out digits of each class; condition "t=<t>"); the
#:     estimators of this kind draw, in registration order, from one generator seeded with estimators.seed;
#: None: computed by another rule (the VAE: rule vae_local_dims; the score model's r_t: the spectra).
KINDS = ("neighbours", "score", None)


@dataclass(frozen=True)
class Estimator:
    """One registered estimator.

    Attributes:
        name: the ``estimator`` value of its rows in the tidy tables.
        label: how figures and tables name it (matplotlib mathtext allowed).
        kind: one of `KINDS`.
        keys: the keys of the ``estimators:`` config section it reads (it is given only these).
        fn: the function of its kind's signature; None for kind None.
    """

    name: str
    label: str
    kind: str | None
    keys: tuple[str, ...] = ()
    fn: Callable[..., Any] | None = None


ESTIMATORS: dict[str, Estimator] = {}


def _add(entry: Estimator) -> None:
    if entry.kind not in KINDS:
        raise ValueError(f"estimator {entry.name!r}: kind must be one of {KINDS}, got {entry.kind!r}")
    known = ESTIMATORS.get(entry.name)
    if known is not None and (known.kind, getattr(known.fn, "__qualname__", None)) != \
            (entry.kind, getattr(entry.fn, "__qualname__", None)):
        raise ValueError(f"estimator {entry.name!r} is registered twice; give one of them another name")
    ESTIMATORS[entry.name] = entry


def estimator(name: str, *, label: str, kind: str, keys: tuple[str, ...] = ()) -> Callable:
    """Register the decorated function (returned unchanged) as the estimator `name` of `kind` (see `KINDS`),
    reading `keys` of the ``estimators:`` config section."""
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        _add(Estimator(name, label, kind, tuple(keys), fn))
        return fn
    return register


def external(name: str, *, label: str) -> None:
    """Register an estimator whose rows another rule computes (only its name and label)."""
    _add(Estimator(name, label, None))


def estimators(kind: str | None) -> list[Estimator]:
    """The registered estimators of `kind`, in registration order (the order of the tables' rows)."""
    return [e for e in ESTIMATORS.values() if e.kind == kind]


def estimator_label(name: str) -> str:
    """The label of estimator `name`; an unregistered name is its own label."""
    return ESTIMATORS[name].label if name in ESTIMATORS else name


def own_config(entry: Estimator, cfg: dict[str, Any]) -> dict[str, Any]:
    """The keys of the ``estimators:`` section `cfg` that `entry` reads.

    Raises:
        ValueError: a key is missing (name it in config.yaml and the schema's estimators section).
    """
    missing = [k for k in entry.keys if k not in cfg]
    if missing:
        raise ValueError(f"estimator {entry.name!r} reads estimators.{missing[0]}, which the config does not have; "
                         "add it to config.yaml and workflow/schemas/config.schema.yaml")
    return {k: cfg[k] for k in entry.keys}
