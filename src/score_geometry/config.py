"""Validation of the workflow config: the JSON schema (types, ranges, enums, unknown keys, defaults) and the
cross-field constraints a schema cannot express.

`validate_config` checks the config against workflow/schemas/config.schema.yaml and fills in its defaults;
`check_config` runs right after it. Both run before any job is scheduled.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Iterable, Mapping


class ConfigError(ValueError):
    """A config value is invalid; the message names the key and what is allowed."""


#: Held-out images of the data sets with a fixed test split (mnist5k's is data.heldout_per_class x 10 classes).
HELDOUT_IMAGES = {"mnist": 10_000, "fashion-mnist": 10_000}
_MAX_LINE = 300  # characters of one error line; a long offending value is cut

#: ``toy:`` keys the toy MLP's training depends on (the rest are analysis and figure options).
TOY_TRAINING_KEYS = ("seed", "surface", "n_train", "data_seed", "model", "train")


def toy_training_section(toy_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the ``toy:`` section that `toy.fit_toy_model` reads (:data:`TOY_TRAINING_KEYS`): the
    `train_toy` rule's params, so an analysis or figure option never retrains the MLP."""
    return {k: toy_cfg[k] for k in TOY_TRAINING_KEYS}


def validate_config(config: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Check `config` against the workflow's JSON `schema`; return a copy with the schema's defaults filled in.

    Stricter than JSON Schema in one respect: an ``integer`` key takes Python ints only. JSON Schema counts
    6.0 as an integer, so a YAML ``6.0`` would pass and fail much later inside a job, naming no key.

    Raises:
        ConfigError: one line per violation, each naming the key path, the offending value and what is
            allowed (never the whole schema, as Snakemake's `validate` prints).
    """
    from jsonschema import Draft202012Validator, validators

    def is_integer(_checker: Any, instance: Any) -> bool:
        return isinstance(instance, int) and not isinstance(instance, bool)

    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def fill_defaults(validator: Any, properties: Mapping[str, Any], instance: Any, schema: Any) -> Iterable[Any]:
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(key, copy.deepcopy(sub["default"]))
        yield from check_properties(validator, properties, instance, schema)

    strict = validators.extend(Draft202012Validator, {"properties": fill_defaults},
                               type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", is_integer))
    filled = copy.deepcopy(dict(config))
    errors = sorted(strict(dict(schema)).iter_errors(filled), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise ConfigError("invalid config:\n" + "\n".join(_describe(e) for e in errors))
    return filled


def _key(path: Iterable[Any]) -> str:
    """["sample", "times", 2] -> "sample.times[2]"."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _describe(error: Any) -> str:
    """One line for a jsonschema ValidationError: key path, offending value, what is allowed."""
    key, value = _key(error.absolute_path), error.instance
    types = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
    if error.validator == "type" and "integer" in types and isinstance(value, (bool, float)):
        hint = f" (write {int(value)})" if isinstance(value, float) and value.is_integer() else ""
        line = f"config key {key}: {value!r} is not an integer{hint}"
    elif error.validator == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        where = f"of {key}" if key else "at the top level"
        return "\n".join(_cut(f"config key {f'{key}.{u}' if key else u}: unknown key (Additional properties are "
                               f"not allowed); allowed keys {where}: {', '.join(known)}")
                          for u in value if u not in known)
    elif error.validator == "pattern":
        line = f"config key {key}: {value!r} does not match the pattern {error.validator_value}"
    else:
        line = f"config key {key or '(top level)'}: {error.message}"
    return _cut(line)


def _cut(line: str) -> str:
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 3] + "..."


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
    model = config["model"]
    if model["source"] != "train":
        path = model["path"]
        if not path:
            raise ConfigError(f"config key model.path: required when model.source is {model['source']}")
        if model["source"] == "callable":
            target, sep, attr = str(path).rpartition(":")
            if not sep or not target or not attr:
                raise ConfigError(f"config key model.path={path!r}: expected 'package.module:function' or "
                                  "'file.py:function' for model.source callable")
            if target.endswith(".py") and not Path(target).is_file():
                raise ConfigError(f"config key model.path={path!r}: no such file {target}")
        elif not Path(path).exists():
            raise ConfigError(f"config key model.path={path!r}: no such {'directory' if model['source'] == 'diffusers' else 'file'}")
        elif model["source"] == "diffusers":
            _check_diffusers_shape(path, config["data"])
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
    data, n_cal = config["data"], config["calibration"]["n_images"]
    if data["dataset"] == "mnist5k":
        n_heldout = 10 * data["heldout_per_class"]
        why = f"data.heldout_per_class={data['heldout_per_class']} x 10 classes"
    elif data["dataset"] == "blobs":
        n_heldout, why = data["blobs"]["n_heldout"], "data.blobs.n_heldout"
    else:
        n_heldout, why = HELDOUT_IMAGES.get(data["dataset"]), "its test split"
    if n_heldout is not None and n_cal > n_heldout:
        raise ConfigError(f"config key calibration.n_images={n_cal} exceeds the {n_heldout} held-out images of "
                          f"data.dataset={data['dataset']} ({why}); use at most {n_heldout}")
    plots = config["plots"]
    fig2 = [] if plots["fig2_image"] == "auto" else [plots["fig2_image"]]
    for key, images in (("plots.fig2_image", fig2), ("plots.examples", plots["examples"])):
        if any(i >= jac["n_images"] for i in images):
            raise ConfigError(f"config key {key}={images} must index the analysed sequences, i.e. be < "
                              f"jacobian.n_images={jac['n_images']}")


def diffusers_unet_dir(directory: str | Path) -> Path:
    """Where a diffusers model directory keeps its UNet: ``unet/`` (as a pipeline's `save_pretrained` writes it)
    if there is one, else the directory itself (as `UNet2DModel.save_pretrained` alone writes it)."""
    directory = Path(directory)
    return directory / "unet" if (directory / "unet").is_dir() else directory


def diffusers_unet_shape(unet_config: Mapping[str, Any]) -> tuple[int, int, int] | None:
    """(C, H, W) a diffusers UNet takes, from its config's ``in_channels`` and ``sample_size`` (an int or
    [H, W]); None if the config does not give both."""
    channels, size = unet_config.get("in_channels"), unet_config.get("sample_size")
    size = [size, size] if isinstance(size, int) else size
    if not isinstance(channels, int) or not isinstance(size, (list, tuple)) or len(size) != 2:
        return None
    return (int(channels), int(size[0]), int(size[1]))


def _check_diffusers_shape(path: str, data_cfg: Mapping[str, Any]) -> None:
    """Raise ConfigError if the UNet's ``config.json`` under `path` says it takes another image shape than the
    configured data set's (torch-free: only the JSON is read). Silent where the file is absent or says nothing
    of the shape; loading the model (`train_model`) reports those."""
    from .datasets import configured_image_shape

    config_file = diffusers_unet_dir(path) / "config.json"
    try:
        unet_config = json.loads(config_file.read_text())
    except (OSError, ValueError):
        return
    model_shape = diffusers_unet_shape(unet_config) if isinstance(unet_config, dict) else None
    data_shape = configured_image_shape(data_cfg)
    if model_shape is not None and model_shape != data_shape:
        raise ConfigError(f"config key model.path={path!r}: the diffusers UNet ({config_file}) takes images of "
                          f"shape {model_shape} (in_channels, sample_size), but data.dataset={data_cfg['dataset']} "
                          f"has images of shape {data_shape}")
