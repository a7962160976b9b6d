"""Tables for the Snakemake report: the stage benchmarks of a run, its sample quality, and every table a rule
writes beside its CSV as Markdown and as an HTML page (`ReportTable`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import pandas as pd


def stage_times(benchmarks: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per rule from Snakemake `benchmark:` tables, sharded rules summed, plus a `total` row.

    Args:
        benchmarks: file stem (``<rule>`` or ``<rule>_shard_<k>``) -> the benchmark TSV as read by pandas
            (columns ``s``, ``cpu_time``, ``max_rss``, …; the last row is the latest run).

    Returns:
        Columns rule, jobs, wall_s, wall_min, cpu_s, max_rss_mb; sorted by wall time, `total` last. Wall
        seconds add up to what a user waits only when jobs run one after another.
    """
    rows = []
    for stem, table in benchmarks.items():
        last = table.iloc[-1]
        rows.append({"rule": stem.split("_shard_")[0], "jobs": 1, "wall_s": float(last["s"]),
                     "cpu_s": float(last["cpu_time"]), "max_rss_mb": float(last["max_rss"])})
    if not rows:
        raise ValueError("no benchmark tables")
    df = pd.DataFrame(rows).groupby("rule", as_index=False).agg(
        jobs=("jobs", "sum"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"), max_rss_mb=("max_rss_mb", "max"))
    df = df.sort_values("wall_s", ascending=False, kind="stable")
    total = pd.DataFrame([{"rule": "total", "jobs": df["jobs"].sum(), "wall_s": df["wall_s"].sum(),
                           "cpu_s": df["cpu_s"].sum(), "max_rss_mb": df["max_rss_mb"].max()}])
    out = pd.concat([df, total], ignore_index=True)
    out.insert(3, "wall_min", out["wall_s"] / 60)
    return out


_TABLE_CSS = """body{font-family:sans-serif;font-size:13px;margin:12px;color:#1e293b}
h2{font-size:15px}table{border-collapse:collapse}th,td{padding:3px 8px;text-align:right;border-bottom:1px solid #cbd5e1}
th{background:#f1f5f9;position:sticky;top:0}tr:hover td{background:#f8fafc}"""


def html_table(df: pd.DataFrame, *, title: str, digits: int = 3) -> str:
    """A standalone HTML page showing `df` (the Snakemake report displays HTML, not CSV, inline).

    Floats are printed with `digits` significant digits; the CSV next to it keeps full precision.
    """
    body = df.to_html(index=False, border=0, float_format=lambda v: f"{v:.{digits}g}", classes="table")
    # numbers align right, text (names, meanings) left
    text = "".join(f"th:nth-child({i + 1}),td:nth-child({i + 1}){{text-align:left}}"
                   for i, dtype in enumerate(df.dtypes) if not pd.api.types.is_numeric_dtype(dtype))
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{_TABLE_CSS}{text}</style></head>\n<body><h2>{title}</h2>\n{body}\n</body></html>\n")


def markdown_table(df: pd.DataFrame, *, floatfmt: str = "g") -> str:
    """`df` as a Markdown table (no index), floats formatted with `floatfmt`, ending with a newline.

    Integer columns (counts such as ``n_images``) stay integers: the table goes to tabulate column by column as
    Python objects, not as one float array (pandas' `to_markdown` of a frame with float and int columns
    printed a count of 2 as ``2.000``).
    """
    return df.astype(object).to_markdown(index=False, floatfmt=floatfmt) + "\n"


@dataclass(frozen=True)
class ReportTable:
    """A table as a rule writes it: the table itself (CSV), its Markdown and its HTML page for the report."""

    table: pd.DataFrame
    markdown: str
    html: str


def report_table(df: pd.DataFrame, *, title: str, floatfmt: str = "g", digits: int = 3,
                 markdown: str | None = None) -> ReportTable:
    """`df` with its Markdown (`markdown_table` with `floatfmt`, unless `markdown` is given) and its HTML page
    (`html_table` with `title` and `digits`)."""
    return ReportTable(df, markdown_table(df, floatfmt=floatfmt) if markdown is None else markdown,
                       html_table(df, title=title, digits=digits))


# What each number of `samples/quality.json` (quality.evaluate_samples) means, in the order a reader checks them.
QUALITY_ROWS = (
    ("n_samples", "generated images evaluated"),
    ("heldout_accuracy", "classifier accuracy on held-out real digits: how far its labels can be trusted"),
    ("mean_max_softmax", "mean classifier confidence on the samples (near 1: each sample reads as one digit)"),
    ("classes_present", "digits (of 10) predicted at least once among the samples"),
    ("class_histogram", "samples per predicted digit, 0 to 9"),
    ("frechet_distance", "Fréchet distance between classifier features of samples and held-out digits"),
    ("frechet_distance_real_baseline", "the same distance between two sets of real digits, the first of the "
                                       "samples' size: what a perfect model would score"),
)


def quality_table(quality: Mapping[str, object], *, digits: int = 3) -> pd.DataFrame:
    """The sample-quality summary as a table for the report: columns quantity, value, meaning.

    Args:
        quality: the dict of ``samples/quality.json``; known keys come first with their meaning, any other key
            follows with an empty meaning. Floats get `digits` significant digits, lists are joined.
    """
    def fmt(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.{digits}g}"
        if isinstance(v, (list, tuple)):
            return " ".join(str(x) for x in v)
        return str(v)

    known = [(k, m) for k, m in QUALITY_ROWS if k in quality]
    extra = [(k, "") for k in quality if k not in dict(QUALITY_ROWS)]
    return pd.DataFrame([{"quantity": k, "value": fmt(quality[k]), "meaning": m} for k, m in known + extra],
                        columns=["quantity", "value", "meaning"])
