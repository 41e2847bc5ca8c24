"""PNG figures of a run: training curves and the confusion matrix (matplotlib, without a display)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .artifacts import atomic_write


def save_figure(fig, path: Path) -> None:
    """``fig`` as a PNG at ``path``, written at once: an interrupted run leaves no half-written image."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write(path, buffer.getvalue())


def plot_history(history: list[dict], path: Path) -> None:
    """Training (and, with a validation slice, validation) loss and accuracy per epoch, and those
    of the weights' running mean (``--average-weights``); a bag's members (rows with a ``member``)
    each get their own curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict = {}
    for row in history:
        groups.setdefault(row.get("member"), []).append(row)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((ax_loss, "loss", "loss"), (ax_acc, "accuracy", "accuracy")):
        for member, rows in groups.items():
            epochs, who = [row["epoch"] for row in rows], "" if member is None else f" (member {member})"
            ax.plot(epochs, [row[f"train_{key}"] for row in rows], "o-", label=f"train{who}")
            if all(f"val_{key}" in row for row in rows):  # no validation slice: training curves only
                ax.plot(epochs, [row[f"val_{key}"] for row in rows], "o--", label=f"validation{who}")
            averaged = [row for row in rows if f"val_{key}_mean" in row]  # --average-weights, from epoch 2
            if averaged:
                ax.plot([row["epoch"] for row in averaged], [row[f"val_{key}_mean"] for row in averaged], "s:",
                        label=f"validation, mean of epochs 1..e{who}")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.set_xticks(sorted({row["epoch"] for row in history}))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    save_figure(fig, path)
    plt.close(fig)


MAX_PLOTTED = 50  # classes of the largest confusion matrix drawn (metrics.json holds every one)


def plot_confusion(matrix: list[list[int]], classes: list[str], path: Path) -> None:
    """The confusion matrix as a picture; none for more than MAX_PLOTTED classes (unreadable, and
    its figure grows with the square of their number)."""
    if len(classes) > MAX_PLOTTED:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 3, 1.2 * len(classes) + 2.5))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_title("confusion matrix (held out)")
    save_figure(fig, path)
    plt.close(fig)


def plot_reliability(curves: dict[str, list[dict]], path: Path) -> None:
    """Reliability diagram: accuracy against confidence per bin (``metrics.reliability``) for each
    named curve (e.g. before and after calibration), with the diagonal a calibrated model follows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ":", color="grey", label="calibrated")
    for name, rows in curves.items():
        ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], "o-", label=name)
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title("reliability (held out)")
    save_figure(fig, path)
    plt.close(fig)
