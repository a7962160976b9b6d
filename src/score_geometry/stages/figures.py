"""The figure stage: one entry point for every plot rule (workflow/rules/plots.smk), which names its figure."""

from __future__ import annotations

from typing import Any, Mapping

from ..plots.registry import registered


def draw_figure(name: str, inputs: Mapping[str, Any], options: Mapping[str, Any]) -> Any:
    """Every plot rule: the registered figure `name` (`score_geometry.plots`, ``@figure``) drawn from the rule's
    inputs (read by file type, `io.read_input`) and its plot options.

    Returns:
        The matplotlib Figure (the caller saves it: `io.save_figure`).

    Raises:
        KeyError: no figure has this name.
        TypeError: the rule's inputs or options are not what the drawing function takes (it names both).
    """
    spec = registered(name)
    given_inputs, given_options = set(inputs), set(options)
    if given_inputs != set(spec.inputs) or not given_options <= set(spec.options):
        raise TypeError(f"figure {name!r}: its rule gives inputs {sorted(given_inputs)} and options "
                        f"{sorted(given_options)}, its drawing function {spec.draw.__module__}.{spec.draw.__name__} "
                        f"takes inputs {list(spec.inputs)} and options {list(spec.options)}: rename the rule's "
                        "input: or params: entries, or the function's parameters")
    return spec.draw(**inputs, **options)
