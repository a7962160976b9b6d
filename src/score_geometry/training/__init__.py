"""Training: the one resumable engine every trainer of the pipeline runs on (`engine`).

Used by the training stages alone (`train`, the VAE's and the toy's fits, the classifier); sampling, Jacobians,
the score-model seam and the estimators never import it (tested).
"""

from .engine import Run, TrainState, fit, init_state, optimizer_step, resume, save, update_ema

__all__ = ["Run", "TrainState", "fit", "init_state", "optimizer_step", "resume", "save", "update_ema"]
