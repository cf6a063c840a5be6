"""scikit-learn's bundled 8x8 handwritten digits as tensors (notebook 08)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import lru_cache

import numpy as np
import torch

from .._validate import check_int as _check_int

# Handwritten digits


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn, no download

    images, labels = load_digits(return_X_y=True)
    return images, labels


@dataclass(frozen=True, repr=False)
class DigitsData:
    """scikit-learn's 8x8 handwritten digits, split once.

    x_train (N, 1, 8, 8) float32 in [0, 1], y_train (N,) long in 0..9;
    x_test, y_test likewise.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    num_classes = 10
    image_shape = (1, 8, 8)

    def __repr__(self) -> str:
        return f"DigitsData(train={len(self.y_train)}, test={len(self.y_test)}, image_shape={self.image_shape})"

    def to(self, device: torch.device | str) -> DigitsData:
        """A copy with every tensor on `device`."""
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def subset(self, n_per_class: int | None = None, fraction: float | None = None, seed: int = 0) -> DigitsData:
        """A smaller training set with the same test set, for accuracy versus
        training-set size. Give either n_per_class (images of each digit) or
        fraction (of each digit's images, at least one). For a fixed seed,
        smaller subsets are contained in larger ones.
        """
        if (n_per_class is None) == (fraction is None):
            raise ValueError(
                f"give exactly one of n_per_class and fraction, got n_per_class={n_per_class!r}, fraction={fraction!r}"
            )
        seed = _check_int("seed", seed, 0)
        counts = torch.bincount(self.y_train, minlength=self.num_classes)
        if n_per_class is not None:
            n_per_class = _check_int("n_per_class", n_per_class, 1)
            if n_per_class > int(counts.min()):
                raise ValueError(
                    f"n_per_class must be <= {int(counts.min())} (the rarest digit's training count), got {n_per_class}"
                )
            wanted = [n_per_class] * self.num_classes
        else:
            if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
                raise TypeError(f"fraction must be a float, got {type(fraction).__name__} {fraction!r}")
            if not 0.0 < fraction <= 1.0:
                raise ValueError(f"fraction must be in (0, 1], got {fraction}")
            wanted = [max(1, int(round(fraction * int(c)))) for c in counts]
        rng = np.random.default_rng(seed)
        labels = self.y_train.cpu().numpy()
        chosen = [rng.permutation(np.flatnonzero(labels == k))[:want] for k, want in enumerate(wanted)]
        index = torch.from_numpy(np.sort(np.concatenate(chosen))).to(self.y_train.device)
        return replace(self, x_train=self.x_train[index], y_train=self.y_train[index])


def load_digits_tensors(test_fraction: float = 0.25, seed: int = 0) -> DigitsData:
    """The 1,797 digits as tensors with a fixed stratified train/test split
    (sklearn's train_test_split with stratify and random_state=seed).
    Pixels (0..16 in the data set) are scaled to [0, 1]."""
    from sklearn.model_selection import train_test_split

    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)):
        raise TypeError(f"test_fraction must be a float, got {type(test_fraction).__name__} {test_fraction!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    seed = _check_int("seed", seed, 0)
    images, labels = _digits_arrays()
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, stratify=labels, random_state=seed
    )

    def as_images(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x / 16.0).float().reshape(-1, 1, 8, 8)  # (N, 1, 8, 8)

    def as_labels(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(y).long()

    return DigitsData(as_images(x_train), as_labels(y_train), as_images(x_test), as_labels(y_test))


