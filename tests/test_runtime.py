"""Process-level setup of the workflow's jobs (score_geometry.runtime)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from score_geometry.runtime import resolve_device, setup_torch, tune_allocator

glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or "glibc" not in " ".join(
    __import__("platform").libc_ver()), reason="tune_allocator uses glibc's mallopt")

# The Jacobian's allocation pattern in small: a burst of few-MB blocks, all freed, again and again (through
# libc's malloc/free directly, which is what torch's CPU allocator calls: Python objects allocated between
# the blocks would make the heap's top, and so trimming, depend on chance). glibc's defaults move their
# thresholds with the process's history (a torch version of this probe faulted on every page in 2 of 8 fresh
# processes, on none in the others), so the probe first pins the behaviour tune_allocator must undo: "mmap"
# maps every 4 MiB block fresh (mmap threshold 128 KiB), "trim" serves them from the heap but hands the heap
# back to the kernel after each burst (trim threshold 128 KiB). After a warm-up it prints the minor page
# faults (the kernel handing out fresh zeroed pages) of 20 bursts.
_PROBE = """
import ctypes, resource, sys
from score_geometry.runtime import tune_allocator
libc = ctypes.CDLL("libc.so.6")
libc.prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE: no transparent huge pages (they would fault 2 MiB at a time)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
mode, tuned = sys.argv[1], sys.argv[2] == "tuned"
if mode == "mmap":
    assert libc.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(128 << 10)) == 1
else:
    assert libc.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(8 << 20)) == 1
    assert libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(128 << 10)) == 1
if tuned:
    assert tune_allocator()
blocks = [0] * 16
def burst():
    for i in range(16):  # 16 x 4 MiB, every page written
        blocks[i] = libc.malloc(4 << 20)
        libc.memset(blocks[i], 1, 4 << 20)
    for b in blocks:
        libc.free(b)
for _ in range(10):
    burst()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    burst()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def _run(code: str, *args: str) -> str:
    """Run `code` in a fresh interpreter whose glibc malloc has its built-in defaults (no GLIBC_TUNABLES or
    MALLOC_* settings inherited from this environment, e.g. hugetlb)."""
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True,
                          env=env).stdout


def _faults(mode: str, tuned: bool) -> int:
    out = _run(_PROBE, mode, "tuned" if tuned else "as-is")
    return int(out.strip().splitlines()[-1])


@glibc
@pytest.mark.parametrize("mode", ["mmap", "trim"])
def test_tune_allocator_reuses_freed_memory_instead_of_faulting_in_fresh_pages(mode):
    pages = 20 * 16 * (4 << 20) // 4096  # 327,680 pages written in the 20 timed bursts
    assert _faults(mode, tuned=False) > 0.9 * pages  # every page faulted in again, burst after burst
    assert _faults(mode, tuned=True) < 0.01 * pages  # the freed memory is reused (measured: 0)


def test_setup_torch_sets_threads_and_tunes_the_allocator(monkeypatch):
    import score_geometry.runtime as runtime

    calls = []
    monkeypatch.setattr(runtime, "tune_allocator", lambda: calls.append(1) or True)
    n = torch.get_num_threads()
    try:
        setup_torch(1)
        assert torch.get_num_threads() == 1 and calls == [1]
    finally:
        torch.set_num_threads(n)
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("tpu")


@glibc
def test_tune_allocator_accepts_its_settings_repeatedly_and_rejects_non_int_values():
    out = _run("from score_geometry.runtime import tune_allocator\n"
               "print(tune_allocator(), tune_allocator(), tune_allocator(1 << 20, 1 << 20))")
    assert out.split() == ["True", "True", "True"]
    for bad in ({"mmap_threshold": -1}, {"trim_threshold": 4 << 30}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            tune_allocator(**bad)


#: The rules whose jobs never run a network: tables, figures, aggregation. Each one's script imports the runtime
#: helpers, `io` and its stage; none of that may import torch (~2 CPU s per job, a third of such a job's cost,
#: paid 20 times in a tiny run).
TORCH_FREE_SCRIPTS = ("aggregate_spectra", "analyse_spectra", "calibrate_noise_floor", "compare_runs",
                      "evaluate_claims", "plot_figure", "prepare_data", "share_with_budget", "summarise_benchmarks",
                      "summarise_quality", "summarise_results", "summarise_trajectory")


@pytest.mark.parametrize("script", TORCH_FREE_SCRIPTS)
def test_table_and_figure_jobs_do_not_import_torch(script):
    from conftest import ROOT

    source = (ROOT / "workflow" / "scripts" / f"{script}.py").read_text()
    imports = [line for line in source.splitlines() if line.startswith(("from score_geometry", "import score"))]
    assert imports, script
    # the lazily exported stage functions load their module on first access: touch every imported name
    names = [n.strip() for line in imports for n in line.split(" import ", 1)[1].split(",")]
    code = "\n".join([*imports, *(f"{n}" for n in names), "import sys", "print('torch' in sys.modules)"])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False", f"{script}.py imports torch"
