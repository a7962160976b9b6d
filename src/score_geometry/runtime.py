"""Process-level setup shared by the workflow scripts: logging to the rule's log file, threads, device."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def setup_logging(log_path: str | Path | None) -> None:
    """Send stderr (tracebacks, tqdm bars) and `logging` records to the rule's log file."""
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        sys.stderr = open(log_path, "w", buffering=1)  # noqa: SIM115 - lives for the whole job
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def set_threads(n: int) -> None:
    """Use `n` CPU threads in torch (Snakemake's `threads:` for the job)."""
    torch.set_num_threads(max(1, int(n)))


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when a GPU is present and actually works, else CPU; ``cpu``/``cuda`` as asked.

    A scheduler may advertise a GPU that cannot be used (e.g. a fake GRES device in a test cluster);
    `auto` then falls back to the CPU instead of failing.
    """
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
