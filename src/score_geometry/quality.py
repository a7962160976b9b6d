"""Sample quality measured, not eyeballed: a small digit classifier, its class histogram and confidence on
generated samples, and the Fréchet distance between its features of samples and of held-out real images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
import torch.nn.functional as F

if TYPE_CHECKING:
    from .training import TrainState


class Classifier(nn.Module):
    """Two conv layers + two dense layers for images (C, H, W) ((1, 28, 28) for MNIST); `features` is the 128-d
    penultimate activation."""

    def __init__(self, n_classes: int = 10, width: int = 32, image_shape: tuple[int, ...] = (1, 28, 28)) -> None:
        super().__init__()
        c, h, w = (int(s) for s in image_shape)
        self.image_shape = (c, h, w)
        self.conv = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * width * (h // 2 // 2) * (w // 2 // 2), 128), nn.ReLU(),
        )
        self.head = nn.Linear(128, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) in [-1, 1] -> (B, 128)."""
        return self.conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> logits (B, n_classes)."""
        return self.head(self.features(x))


def train_classifier(images: torch.Tensor, labels: torch.Tensor, cfg: Mapping[str, Any], *, seed: int,
                     progress: bool = True) -> Classifier:
    """Adam on cross-entropy with random shifts of up to 2 px (so it also reads slightly off-centre samples), on
    the training engine (in memory: no checkpoint, no metrics log).

    Args:
        images: (N, C, H, W) in [-1, 1] ((N, 1, 28, 28) for MNIST); labels: (N,) int64 in [0, 10).
        cfg: the ``classifier:`` config section (steps, batch_size, lr, width).

    Returns:
        The trained classifier, in eval mode without gradients.
    """
    from .training import engine  # here only: evaluating samples does not load the training code

    if int(labels.max()) >= 10:
        raise ValueError(f"the classifier has 10 classes; got label {int(labels.max())}")
    image_shape = tuple(images.shape[1:])
    state = engine.init_state(lambda: Classifier(width=cfg["width"], image_shape=image_shape),
                              lambda model: torch.optim.Adam(model.parameters(), lr=cfg["lr"]), seed=seed)
    state.model.train()

    def step(state: TrainState) -> dict[str, float]:
        idx = torch.randint(len(images), (cfg["batch_size"],), generator=state.generator)
        dx, dy = torch.randint(-2, 3, (2,), generator=state.generator).tolist()
        x = torch.roll(images[idx], shifts=(dx, dy), dims=(2, 3))
        return {"loss": engine.optimizer_step(state, F.cross_entropy(state.model(x), labels[idx]))}

    engine.fit(state, step, total=cfg["steps"], progress=progress, desc="classifier")
    return state.model.eval().requires_grad_(False)


@torch.no_grad()
def predict(model: Classifier, images: torch.Tensor, *, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities (N, n_classes) and features (N, 128) of images (N, C, H, W)."""
    probs, feats = [], []
    for start in range(0, len(images), batch_size):
        f = model.features(images[start:start + batch_size])
        feats.append(f)
        probs.append(F.softmax(model.head(f), dim=1))
    return torch.cat(probs), torch.cat(feats)


def classifier_checkpoint(model: Classifier, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The classifier's checkpoint: its weights, the ``classifier:`` config section it was built with and the
    (C, H, W) of its images."""
    return {"state": model.state_dict(), "config": dict(cfg), "image_shape": list(model.image_shape)}


def load_classifier(checkpoint: Mapping[str, Any]) -> Classifier:
    """The classifier of a `classifier_checkpoint`, in eval mode and without gradients."""
    model = Classifier(width=checkpoint["config"]["width"], image_shape=checkpoint.get("image_shape", (1, 28, 28)))
    model.load_state_dict(checkpoint["state"])
    return model.eval().requires_grad_(False)


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    lam, q = np.linalg.eigh(a)
    return (q * np.sqrt(np.clip(lam, 0, None))) @ q.T


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N_a, F) and (N_b, F).

    ||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)), with Tr (C_a C_b)^(1/2) computed as the sum of
    square roots of the eigenvalues of the symmetric PSD C_a^(1/2) C_b C_a^(1/2): stable when the
    covariances are singular (fewer samples than features), where a general matrix square root is not.
    """
    mu_a, mu_b = feat_a.mean(0), feat_b.mean(0)
    cov_a, cov_b = np.cov(feat_a, rowvar=False), np.cov(feat_b, rowvar=False)
    s_a = _sqrt_psd(cov_a)
    tr_covmean = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(s_a @ cov_b @ s_a), 0, None)))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_covmean)


def evaluate_samples(model: Classifier, samples: torch.Tensor, heldout_images: torch.Tensor,
                     heldout_labels: torch.Tensor, *, seed: int) -> tuple[dict[str, Any], pd.DataFrame]:
    """Quality metrics of generated samples against held-out real images.

    Args:
        samples: (N, C, H, W) final generated images in [-1, 1] (clipped here).
        heldout_images / heldout_labels: real images not used to train the classifier or the score model.

    Returns:
        A summary dict and a per-image table (columns image, label, max_softmax: the classifier's predicted
        digit and its confidence, used as the label of each sequence downstream). The summary has heldout_accuracy, class_histogram (10 counts), classes_present, mean_max_softmax,
        frechet_distance (samples vs held-out), and frechet_distance_real_baseline: the same distance
        between a random held-out subset of the samples' size and the rest of the held-out set, i.e. what
        a perfect model would score at this sample size.
    """
    p_real, f_real = predict(model, heldout_images)
    accuracy = float((p_real.argmax(1) == heldout_labels).float().mean())
    p, f = predict(model, samples.clamp(-1, 1))
    pred = p.argmax(1)
    hist = torch.bincount(pred, minlength=p.shape[1])
    n = len(samples)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(heldout_images))
    f_real_np = f_real.double().numpy()
    baseline = frechet_distance(f_real_np[perm[:n]], f_real_np[perm[n:]]) if len(perm) > 2 * n else float("nan")
    summary = {
        "n_samples": n,
        "heldout_accuracy": accuracy,
        "class_histogram": hist.tolist(),
        "classes_present": int((hist > 0).sum()),
        "mean_max_softmax": float(p.max(1).values.mean()),
        "frechet_distance": frechet_distance(f.double().numpy(), f_real_np),
        "frechet_distance_real_baseline": baseline,
    }
    per_image = pd.DataFrame({"image": np.arange(n), "label": pred.numpy().astype(np.int64),
                              "max_softmax": p.max(1).values.numpy().astype(np.float64)})
    return summary, per_image


#: The share of held-out images closer to the training set than `COPY_QUANTILE` of held-out images are: by
#: definition the share of a model's samples that are as close, when the model does not memorise.
COPY_QUANTILE = 0.05


def nearest_distances(queries: torch.Tensor, reference: torch.Tensor, *, batch_size: int = 256) -> np.ndarray:
    """Euclidean distance of each query (N, ...) to its nearest reference (M, ...) image, in pixel space.

    Returns:
        (N,) float64.
    """
    ref = reference.reshape(len(reference), -1).double()
    out = []
    for i in range(0, len(queries), batch_size):
        q = queries[i:i + batch_size].reshape(-1, ref.shape[1]).double()
        out.append(torch.cdist(q, ref).min(dim=1).values)
    return torch.cat(out).numpy() if out else np.empty(0)


def memorisation(samples: torch.Tensor, train_images: torch.Tensor, heldout_images: torch.Tensor
                 ) -> dict[str, float]:
    """Does the model reproduce its training images? Each sample's distance to its nearest training image,
    against the same for held-out real images (which the model never saw: the distance a generalising model's
    samples should keep).

    Args:
        samples: (N, C, H, W) generated images in [-1, 1] (clipped here); train_images / heldout_images: real
            images in [-1, 1], the score model's training split and images it never saw.

    Returns:
        nn_distance_samples / nn_distance_heldout: the median nearest-training-image distances; memorisation_ratio:
        their quotient (about 1 without memorisation, towards 0 as samples become copies); copy_share: the share
        of samples closer to a training image than `COPY_QUANTILE` of held-out images are (its no-memorisation
        value is `COPY_QUANTILE`, reported as copy_share_null).
    """
    d_samples = nearest_distances(samples.clamp(-1, 1), train_images)
    d_heldout = nearest_distances(heldout_images, train_images)
    cut = float(np.quantile(d_heldout, COPY_QUANTILE))
    return {"nn_distance_samples": float(np.median(d_samples)), "nn_distance_heldout": float(np.median(d_heldout)),
            "memorisation_ratio": float(np.median(d_samples) / np.median(d_heldout)),
            "copy_share": float(np.mean(d_samples < cut)), "copy_share_null": COPY_QUANTILE}


def labels_along_sequences(model: Classifier, x0_hat_t: np.ndarray, t: Sequence[float],
                           final_labels: Sequence[int]) -> pd.DataFrame:
    """The classifier on the model's denoised estimate at each recorded t, against each sequence's final label.

    Args:
        x0_hat_t: (n, T, C, H, W) denoised estimates (`stages.denoised_at_times`); final_labels: (n,).
    Returns:
        One row per (image, t): image, t, final_label, label (argmax at t), p_final (the probability of the
        final label at t), changed (label != final_label).
    """
    n, T = x0_hat_t.shape[:2]
    x = torch.as_tensor(x0_hat_t, dtype=torch.float32).reshape(n * T, *x0_hat_t.shape[2:])
    p, _ = predict(model, x.clamp(-1, 1))
    p = p.reshape(n, T, -1).numpy()
    final = np.asarray(final_labels, dtype=np.int64)
    label = p.argmax(-1)
    return pd.DataFrame({"image": np.repeat(np.arange(n), T), "t": np.tile(np.asarray(t, dtype=float), n),
                         "final_label": np.repeat(final, T), "label": label.reshape(-1),
                         "p_final": p[np.arange(n)[:, None], np.arange(T)[None, :], final[:, None]].reshape(-1),
                         "changed": (label != final[:, None]).reshape(-1)})


def class_change_example(labels_t: pd.DataFrame, *, n_analysed: int) -> tuple[int, str]:
    """The analysed sequence whose label at the highest recorded t differs most from its final label (the
    paper's Fig. 2 looks for mixing across classes at high noise): among images < n_analysed, the lowest
    probability of the final label at that t. Returns the image and a one-line reason."""
    t_max = labels_t["t"].max()
    d = labels_t[(labels_t["t"] == t_max) & (labels_t["image"] < n_analysed)]
    row = d.sort_values(["p_final", "image"]).iloc[0]
    return int(row["image"]), (f"sequence {int(row['image'])}: final label {int(row['final_label'])}, at t={t_max:g} "
                               f"classified {int(row['label'])} (p(final) = {row['p_final']:.2f})")
