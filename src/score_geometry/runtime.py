"""Process-level setup shared by the workflow scripts: logging to the rule's log file, threads, allocator,
device.

Every script imports this module first, including those of rules that never touch a tensor (plots, tables,
aggregation), so it imports torch only inside the functions that use it: importing torch costs ~2 CPU s per
job, a third of a table or figure job's whole cost (tests/test_runtime.py keeps it that way)."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .cpus import usable_cpus

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def setup_logging(log_path: str | Path | None) -> None:
    """Send stderr (tracebacks, tqdm bars) and `logging` records to the rule's log file."""
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        sys.stderr = open(log_path, "w", buffering=1)  # noqa: SIM115 - lives for the whole job
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def set_threads(n: int) -> int:
    """Use `n` CPU threads in torch (Snakemake's `threads:` for the job), at most the CPUs this process may
    use (a cluster profile's set-threads can exceed a node's cgroup quota); returns the number set."""
    import torch

    n = max(1, min(int(n), usable_cpus()))
    torch.set_num_threads(n)
    return n


#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def tune_allocator(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Keep freed tensor memory in the process instead of handing it back to the OS (glibc only).

    PyTorch's CPU tensors come from glibc ``malloc``.  With glibc's defaults a block above the (dynamic)
    mmap threshold gets fresh pages from the kernel on every allocation and returns them on every free, so
    a loop that allocates the same few-MB activations over and over page-faults on all of them: an exact
    784x784 U-Net Jacobian took ~250,000 minor page faults and 0.4 s of system time (1.3 s in all); with
    this setting, 0 faults and 0.97 s (docs/benchmarks.md).  Worse, the threshold moves with the process's
    history (glibc raises it after freeing a large block), so the same call ran at either speed depending
    on what ran before it.  This fixes the threshold at ``mmap_threshold`` bytes (glibc's largest allowed
    value on 64-bit, 32 MiB) and trims the heap only above ``trim_threshold`` bytes of free memory at its
    top.  It is what jemalloc/tcmalloc give PyTorch on CPU, without a preloaded library.

    Returns True when glibc accepted both settings; False where there is no glibc (macOS, musl: nothing is
    changed) or glibc refused one (e.g. a 32-bit build, whose largest mmap threshold is 512 KiB; the other
    setting may then be in effect).  Call it once, early; it affects the whole process.
    """
    for name, value in (("mmap_threshold", mmap_threshold), ("trim_threshold", trim_threshold)):
        if not 0 <= value <= 2**31 - 1:  # mallopt takes a C int
            raise ValueError(f"{name} must be in [0, 2**31 - 1] bytes, got {value}")
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = (mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(mmap_threshold)) == 1
          and mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(trim_threshold)) == 1)
    log.info("allocator: glibc mmap threshold %d B, trim threshold %d B (%s)", mmap_threshold, trim_threshold,
             "set" if ok else "not accepted")
    return ok


def setup_torch(threads: int) -> int:
    """A CPU job's torch setup: `threads` intra-op threads (Snakemake's ``threads:``, capped by `set_threads`)
    and `tune_allocator`; returns the threads set."""
    n = set_threads(threads)
    log.info("threads %d (OMP_WAIT_POLICY=%s)", n, os.environ.get("OMP_WAIT_POLICY", "unset"))
    tune_allocator()
    return n


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when a GPU is present and actually works, else CPU; ``cpu``/``cuda`` as asked.

    A scheduler may advertise a GPU that cannot be used (e.g. a fake GRES device in a test cluster);
    `auto` then falls back to the CPU instead of failing.
    """
    import torch

    if name == "cpu":
        return torch.device("cpu")
    if name not in ("auto", "cuda"):
        raise ValueError(f"device must be one of auto, cpu, cuda; got {name!r}")
    usable = False
    if torch.cuda.is_available():
        try:
            torch.zeros(1, device="cuda").add_(1).item()
            usable = True
        except Exception as e:  # noqa: BLE001 - any driver error means "not usable"
            log.warning("CUDA is advertised but not usable (%s); falling back to CPU", e)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if name == "cuda" and not usable:
        raise RuntimeError(f"device: cuda was requested but no usable CUDA device is present "
                           f"(CUDA_VISIBLE_DEVICES={visible})")
    device = torch.device("cuda" if usable else "cpu")
    log.info("device %s (asked for %s; CUDA_VISIBLE_DEVICES=%s)", device, name, visible)
    return device
