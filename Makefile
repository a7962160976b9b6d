# The two commands: `make run` (set up, then the whole default workflow) and `make test` (set up, then the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# exact tested versions (pyproject.toml has compatible ranges); a change to either's content reinstalls
CONSTRAINTS := envs/constraints.txt
# The stamp is named by the checksum of both files, and that name is its only trigger: no prerequisites, so a
# fresh clone or a branch switch (new modification times, same content) finds it and reinstalls nothing.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(CONSTRAINTS) | cksum | cut -d' ' -f1)
CORES ?= all
# pytest-xdist workers for `make test`, each test module on one worker (its module-scoped runs are built once),
# handed out in collection order, the longest modules first (tests/conftest.py, HEAVY_MODULES); the session's
# tiny run is built once for all workers (tests/conftest.py). README quotes the measured time.
TEST_WORKERS ?= 2

.PHONY: run test venv system-deps figures lint lock compare trajectory

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)

# x0, eps and the Gaussian oracle side by side, and their comparison (results/comparison/)
compare: $(STAMP)
	$(BIN)/snakemake -s workflow/compare.smk --cores $(CORES)

# every claim along one training run, at the budgets of presets/trajectory.yaml (results/trajectory/)
trajectory: $(STAMP)
	$(BIN)/snakemake -s workflow/trajectory.smk --cores $(CORES)

test: $(STAMP) system-deps lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

venv: $(STAMP)

# (Not --no-compile: these machines set PYTHONDONTWRITEBYTECODE=1, so without the install's bytecode every
# process compiles what it imports, ~2.4 s more per torch import; measured, the suite took 21 min instead of 14.)
$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

# Debian packages the tests use (needs root and apt; skipped otherwise, and the tests that need them skip
# with the reason): Fashion-MNIST's IDX files, Chromium for opening the HTML report as a web page, and a
# one-node SLURM with accounting (slurmctld, slurmd, slurmdbd, MariaDB, munge; no daemon is left running).
system-deps:
	@missing=""; \
	[ -d /usr/share/datasets/fashion-mnist ] || missing="$$missing dataset-fashion-mnist"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	for p in slurmctld slurmd slurmdbd slurm-client munge mariadb-server; do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# Rebuild only the figures of the default run (upstream results must exist or are built first): the `figures`
# target collects every plot rule's outputs (workflow/rules/plots.smk), and every plot_* rule is forced to rerun
# (--list-rules prints "name (docstring)": the first word of each plot_ line).
figures: $(STAMP)
	$(BIN)/snakemake figures --cores $(CORES) --forcerun $$($(BIN)/snakemake --list-rules | awk '/^plot_/ {print $$1}')

# Snakemake's linter and the Snakemake formatter (settings in pyproject.toml); part of `make test`.
lint: $(STAMP)
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check .

# Rewrite the exact pins (envs/constraints.txt and the env file's pip section) from the current .venv: after
# changing a range in pyproject.toml or upgrading a package there (.venv/bin/pip install -U <pkg>) and testing.
# No install first: `make venv` would put the old pins back.
lock:
	$(BIN)/python envs/update_pins.py
