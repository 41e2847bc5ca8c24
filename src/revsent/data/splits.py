"""The tutorial's split into training and held-out parts, and the validation slices of the
training part (one per bag member): scikit-learn's ``train_test_split`` draws, as row masks."""
from __future__ import annotations

import numpy as np

from ..errors import DataError


def split(n: int, test_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out indices, sorted: scikit-learn's ``train_test_split``, as the tutorial."""
    mask = heldout_mask(n, test_split, seed)
    return np.flatnonzero(mask == 0), np.flatnonzero(mask)


def heldout_mask(n: int, fraction: float, seed: int, option: str = "--test-split") -> np.ndarray:
    """(n,) uint8, 1 for the records ``train_test_split(test_size=fraction, random_state=seed)``
    holds out of ``n`` records in order. Drawn by the ShuffleSplit that train_test_split uses,
    over no features, so the only O(n) array is its permutation."""
    from sklearn.model_selection import ShuffleSplit

    if n < 2:
        raise DataError("data", f"{n} record(s) cannot be split with {option} {fraction}")
    try:
        _, held = next(ShuffleSplit(n_splits=1, test_size=fraction, random_state=seed).split(np.empty((n, 0))))
    except ValueError as exc:
        raise DataError("data", f"{n} records cannot be split with {option} {fraction} ({exc})") from None
    mask = np.zeros(n, dtype=np.uint8)
    mask[held] = 1
    return mask


def validation_mask(n_train: int, fraction: float, seed: int) -> np.ndarray:
    """(n_train,) uint8 over the training part, 1 for the validation slice (early stopping, the
    best epoch, tuning): ``train_test_split``'s draw over the training rows in order; all zeros
    when ``fraction`` is 0."""
    if not fraction:
        return np.zeros(n_train, dtype=np.uint8)
    return heldout_mask(n_train, fraction, seed, option="--val-fraction")


def member_masks(n_train: int, fraction: float, seed: int, members: int) -> list[np.ndarray]:
    """One validation mask per member of a bag (``--members``), over the training part. The first
    is :func:`validation_mask`'s; each next one is drawn, as many rows, from the rows that no earlier
    member validates on, so the slices are disjoint and each row validates at most one member.
    Without a validation slice every member trains on every row."""
    first = validation_mask(n_train, fraction, seed)
    size = int(first.sum())
    if not size:
        return [first] * members
    masks, free = [first], np.flatnonzero(first == 0)
    for i in range(1, members):
        if size > len(free):
            raise DataError("data", f"{n_train} training records hold no {members} separate validation slices "
                                    f"of {size} (--members {members}, --val-fraction {fraction})")
        pick = np.random.default_rng([seed, i]).choice(free, size, replace=False)
        mask = np.zeros(n_train, dtype=np.uint8)
        mask[pick] = 1
        masks.append(mask)
        free = free[mask[free] == 0]
    return masks
