"""Checks on the workflow config that a JSON schema cannot express (cross-field constraints).

The schema in workflow/schemas/config.schema.yaml checks types, ranges, enums and unknown keys;
`check_config` runs right after it, before any job is scheduled.
"""

from __future__ import annotations

from typing import Any, Mapping


class ConfigError(ValueError):
    """A config value is invalid; the message names the key and what is allowed."""


def check_config(config: Mapping[str, Any]) -> None:
    """Raise ConfigError naming the offending key if a cross-field constraint fails."""
    times = list(config["sample"]["times"])
    if any(b <= a for a, b in zip(times, times[1:])):
        raise ConfigError(
            f"config key sample.times must be strictly increasing (sorted, no duplicates), "
            f"each in (0, 1]; got {times}"
        )
    t_end = config["sample"]["t_end"]
    if t_end > times[0]:
        raise ConfigError(
            f"config key sample.t_end={t_end} must not exceed the smallest recorded time "
            f"sample.times[0]={times[0]}"
        )
    sde = config["sde"]
    if sde["beta_min"] >= sde["beta_max"]:
        raise ConfigError(f"config keys sde.beta_min={sde['beta_min']} must be < sde.beta_max={sde['beta_max']}")
    jac = config["jacobian"]
    if jac["n_images"] > config["sample"]["n_images"]:
        raise ConfigError(
            f"config key jacobian.n_images={jac['n_images']} must not exceed sample.n_images={config['sample']['n_images']}"
        )
    if jac["shards"] > jac["n_images"]:
        raise ConfigError(f"config key jacobian.shards={jac['shards']} must not exceed jacobian.n_images={jac['n_images']}")
    plots = config["plots"]
    for key, images in (("plots.fig2_image", [plots["fig2_image"]]), ("plots.examples", plots["examples"])):
        if any(i >= jac["n_images"] for i in images):
            raise ConfigError(f"config key {key}={images} must index the analysed sequences, i.e. be < "
                              f"jacobian.n_images={jac['n_images']}")
