"""Rewrite the exact pins from an environment (`make lock`): envs/constraints.txt gets every installed package
(pip freeze, the project itself left out) and the pip section of envs/score-geometry.yaml the pins of the
package's own dependencies, so the two stay equal (tests/test_envs.py checks it).

Workflow: change a range in pyproject.toml or upgrade a package in .venv (`.venv/bin/pip install -U <pkg>`), run
the tests, then `make lock`.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER_END = "# --- pins ---"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_freeze(text: str) -> dict[str, str]:
    """`pip freeze` lines -> {normalised name: "Name==version"}; editables, URLs and the project are skipped."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-e")) or "==" not in line or " @ " in line:
            continue
        name = line.split("==")[0]
        if _norm(name) != "score-geometry":
            out[_norm(name)] = line
    return out


def rewrite(freeze: dict[str, str], constraints: Path, env_file: Path) -> None:
    header = [ln for ln in constraints.read_text().splitlines() if ln.startswith("#")]
    constraints.write_text("\n".join([*header, *freeze.values()]) + "\n")  # pip freeze order
    lines = env_file.read_text().splitlines()
    for k, line in enumerate(lines):
        m = re.match(r"^(\s*- )([A-Za-z0-9_.\-]+)==(\S+)\s*$", line)
        if m and _norm(m.group(2)) in freeze:
            lines[k] = m.group(1) + freeze[_norm(m.group(2))]
    env_file.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--freeze", type=Path, help="a pip freeze output to use instead of this interpreter's")
    ap.add_argument("--constraints", type=Path, default=HERE / "constraints.txt")
    ap.add_argument("--env-file", type=Path, default=HERE / "score-geometry.yaml")
    args = ap.parse_args(argv)
    text = args.freeze.read_text() if args.freeze else subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True, text=True,
        check=True).stdout
    rewrite(parse_freeze(text), args.constraints, args.env_file)


if __name__ == "__main__":
    main()
