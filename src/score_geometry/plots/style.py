"""The figures' common look: the non-interactive backend and the colour-blind-safe palette."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

# Colour-blind-safe qualitative palette (Okabe & Ito), one colour per t.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")

__all__ = ["OKABE_ITO", "plt"]
