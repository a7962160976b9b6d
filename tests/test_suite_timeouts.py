"""The test suite on a busy machine (issue 24): every end-to-end subprocess timeout comes from one place,
`conftest.E2E_TIMEOUT`, generous by default and set by the environment variable SCORE_GEOMETRY_TEST_TIMEOUT."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

from conftest import E2E_TIMEOUT, LONG_E2E_TIMEOUT, ROOT

# commands whose timeouts are not end-to-end runs: Debian package installs, `make -n`
NOT_END_TO_END = ("apt-get", "make")


def _conftest_value(env_value: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SCORE_GEOMETRY_TEST_TIMEOUT"}
    if env_value is not None:
        env["SCORE_GEOMETRY_TEST_TIMEOUT"] = env_value
    code = ("import inspect, conftest; print(conftest.E2E_TIMEOUT, conftest.LONG_E2E_TIMEOUT, "
            "inspect.signature(conftest.run_snakemake).parameters['timeout'].default)")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT / "tests", env=env, capture_output=True, text=True,
                          timeout=E2E_TIMEOUT)


def test_the_timeout_is_generous_by_default_and_set_by_one_environment_variable():
    assert _conftest_value(None).stdout.split() == ["3600.0", "7200.0", "None"]  # None: run_snakemake's is E2E_TIMEOUT
    assert _conftest_value("90").stdout.split() == ["90.0", "180.0", "None"]
    bad = _conftest_value("ten minutes")
    assert bad.returncode != 0 and "SCORE_GEOMETRY_TEST_TIMEOUT='ten minutes'" in bad.stderr
    assert LONG_E2E_TIMEOUT == 2 * E2E_TIMEOUT


def test_no_test_sets_its_own_end_to_end_timeout():
    """A literal number of seconds passed as a subprocess's timeout would not follow SCORE_GEOMETRY_TEST_TIMEOUT
    (waiting for a killed process, `proc.wait(timeout=...)`, and package installs aside)."""
    offenders = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            literal = [k for k in node.keywords if k.arg == "timeout" and isinstance(k.value, ast.Constant)]
            if not literal or (isinstance(node.func, ast.Attribute) and node.func.attr == "wait"):
                continue
            command = node.args[0] if node.args else None
            if isinstance(command, ast.List) and command.elts and isinstance(command.elts[0], ast.Constant) \
                    and command.elts[0].value in NOT_END_TO_END:
                continue
            offenders.append(f"{path.name}:{node.lineno}: {ast.unparse(node)[:120]}")
    assert not offenders, offenders
