#!/usr/bin/env bash
# Run by Snakemake inside the freshly created conda env (--sdm conda), from the workflow's working directory:
# installs this repository's package `score_geometry` (editable, so code changes need no redeploy; its
# dependencies are already pinned by score-geometry.yaml). Set SCORE_GEOMETRY_SRC to the repository when
# Snakemake runs elsewhere (--directory).
set -euo pipefail
src="${SCORE_GEOMETRY_SRC:-$PWD}"
if ! grep -qs '^name = "score-geometry"' "$src/pyproject.toml"; then
    echo "score-geometry post-deploy: $src is not the score-geometry repository (no pyproject.toml naming it);" \
         "run Snakemake from the repository root or set SCORE_GEOMETRY_SRC to it" >&2
    exit 1
fi
python -m pip install --no-deps -e "$src"
