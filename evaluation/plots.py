"""Per-head evaluation plots: confusion matrix, precision/recall/F1 heatmap, per-class
accuracy bars.

Figures are drawn with matplotlib's object-oriented API on the Agg canvas (no
display, no pyplot state), so they work on servers and in threads. With many
classes (more than `MAX_CLASSES` present) only the most-confused classes are
shown (ranked by their off-diagonal confusion counts, then by how often they occur),
and the title says how many of how many classes are shown.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from evaluation.metrics import (
    HeadPredictions,
    class_accuracies,
    confusion_matrix,
    precision_recall_f1,
)
from utils.files import write_output

MAX_CLASSES = 30
NAME_LENGTH = 24
PLOT_KINDS = ("confusion_matrix", "heatmap", "bar_graph")


def short_name(name: str, length: int = NAME_LENGTH) -> str:
    """A class name cut to `length` characters (with an ellipsis)."""
    return name if len(name) <= length else name[: length - 1] + "\u2026"


def select_classes(
    confusion: np.ndarray, limit: int = MAX_CLASSES, require_support: bool = False
) -> tuple[list[int], str]:
    """The classes worth showing, and a note on the selection.

    Classes that occur in the set (or, unless `require_support`, are predicted) are
    candidates; when more than `limit`, the `limit` most-confused ones (largest
    off-diagonal row + column count, then largest support) are kept, in that order.

    Args:
        confusion: `(C, C)` counts, row = true class, column = predicted.
        limit: the most classes to show.
        require_support: only classes with at least one sample.

    Returns:
        Class indices and a note for the title ("" when every candidate is shown).
    """
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    mask = support > 0 if require_support else (support > 0) | (predicted > 0)
    candidates = [int(c) for c in np.flatnonzero(mask)]
    if len(candidates) <= limit:
        return candidates, ""
    diagonal = np.diag(confusion)
    confused = (support - diagonal) + (predicted - diagonal)
    ranked = sorted(candidates, key=lambda c: (-confused[c], -support[c], c))
    return (
        ranked[:limit],
        f"{limit} of {len(candidates)} classes shown: most confused first",
    )


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _title(title: str, note: str) -> str:
    return f"{title}\n({note})" if note else title


def _save(figure: Figure, path: Path) -> Path:
    """Write the figure as a PNG (atomically; `UserError` when it cannot be)."""
    figure.tight_layout()
    write_output(path, lambda file: figure.savefig(file, format="png"))
    return path


def plot_confusion_matrix(
    confusion: np.ndarray, names: list[str], path: Path, title: str
) -> Path:
    """A confusion matrix: counts in the cells, colour = share of the true class.

    Args:
        confusion: `(C, C)` counts, row = true class, column = predicted.
        names: the C class names.
        path: the PNG to write.
        title: the figure title.

    Returns:
        `path`.
    """
    classes, note = select_classes(confusion)
    sub = confusion[np.ix_(classes, classes)] if classes else np.zeros((0, 0))
    rows = confusion.sum(axis=1)[classes][:, None]  # every sample of the class
    normalised = np.divide(sub, rows, out=np.zeros(sub.shape), where=rows > 0)
    size = max(4.0, 0.45 * len(classes) + 2.5)
    figure = _figure(size + 1.0, size)
    axes = figure.add_subplot()
    image = axes.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(
        image, ax=axes, fraction=0.046, pad=0.04, label="share of the true class"
    )
    labels = [short_name(names[c]) for c in classes]
    axes.set_xticks(range(len(classes)), labels, rotation=90, fontsize=8)
    axes.set_yticks(range(len(classes)), labels, fontsize=8)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    for row in range(len(classes)):
        for column in range(len(classes)):
            count = int(sub[row, column])
            if count:
                colour = "white" if normalised[row, column] > 0.5 else "black"
                axes.text(
                    column,
                    row,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color=colour,
                )
    axes.set_title(_title(title, note), fontsize=10)
    return _save(figure, path)


def plot_metrics_heatmap(
    confusion: np.ndarray, names: list[str], path: Path, title: str
) -> Path:
    """Per-class precision, recall and F1 as a heatmap (one row per class).

    Args:
        confusion: `(C, C)` counts, row = true class, column = predicted.
        names: the C class names.
        path: the PNG to write.
        title: the figure title.

    Returns:
        `path`.
    """
    classes, note = select_classes(confusion)
    scores = precision_recall_f1(torch.from_numpy(confusion)).numpy()[classes]
    support = confusion.sum(axis=1)[classes]
    figure = _figure(6.0, max(3.0, 0.32 * len(classes) + 2.0))
    axes = figure.add_subplot()
    image = axes.imshow(scores.reshape(-1, 3), cmap="viridis", vmin=0, vmax=1)
    image.axes.set_aspect("auto")
    figure.colorbar(image, ax=axes, fraction=0.08, pad=0.04)
    axes.set_xticks(range(3), ["precision", "recall", "F1"])
    axes.set_yticks(
        range(len(classes)),
        [f"{short_name(names[c])} (n={int(n)})" for c, n in zip(classes, support)],
        fontsize=8,
    )
    for row in range(len(classes)):
        for column in range(3):
            value = float(scores[row, column])
            axes.text(
                column,
                row,
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if value > 0.6 else "white",
            )
    axes.set_title(_title(title, note), fontsize=10)
    return _save(figure, path)


def plot_class_accuracy(
    accuracies: list[float | None],
    confusion: np.ndarray,
    names: list[str],
    path: Path,
    title: str,
) -> Path:
    """Per-class top-1 accuracy as horizontal bars (classes present in the set).

    Args:
        accuracies: per class, top-1 accuracy or None when absent from the set.
        confusion: `(C, C)` counts (chooses the classes shown when there are many).
        names: the C class names.
        path: the PNG to write.
        title: the figure title.

    Returns:
        `path`.
    """
    classes, note = select_classes(confusion, require_support=True)
    values = [accuracies[c] or 0.0 for c in classes]
    support = confusion.sum(axis=1)
    figure = _figure(7.0, max(3.0, 0.3 * len(classes) + 1.8))
    axes = figure.add_subplot()
    positions = np.arange(len(classes))
    axes.barh(positions, values, color="tab:blue")
    axes.set_yticks(
        positions,
        [f"{short_name(names[c])} (n={int(support[c])})" for c in classes],
        fontsize=8,
    )
    axes.invert_yaxis()
    axes.set_xlim(0.0, 1.05)
    axes.set_xlabel("top-1 accuracy")
    for position, value in zip(positions, values):
        axes.text(min(value + 0.01, 0.92), position, f"{value:.2f}", va="center")
    axes.set_title(_title(title, note), fontsize=10)
    return _save(figure, path)


def plot_no_labels(path: Path, title: str) -> Path:
    """A placeholder figure for a head without any labelled sample in the set."""
    figure = _figure(5.0, 2.5)
    axes = figure.add_subplot()
    axes.axis("off")
    axes.text(0.5, 0.5, "no labelled samples", ha="center", va="center")
    axes.set_title(title, fontsize=10)
    return _save(figure, path)


def save_head_plots(
    predictions: HeadPredictions,
    names: list[str],
    kinds: list[str],
    prefix: Path,
    title: str,
) -> list[Path]:
    """The requested plots of one head, as `<prefix>-<kind>.png`.

    Args:
        predictions: the head's logits and labels over the set.
        names: the head's class names (one per logit).
        kinds: any of `PLOT_KINDS`.
        prefix: path prefix, e.g. `results/best_val-gloss`.
        title: what the plots show, e.g. "best.ckpt, val, head gloss".

    Returns:
        The files written.
    """
    logits, labels = predictions.labelled()
    num_classes = predictions.logits.shape[1]
    names = list(names) + [str(i) for i in range(len(names), num_classes)]
    predicted = logits.argmax(dim=1) if labels.numel() else labels
    confusion = confusion_matrix(labels, predicted, num_classes).numpy()
    written = []
    for kind in kinds:
        path = prefix.with_name(f"{prefix.name}-{kind}.png")
        if not labels.numel():
            written.append(plot_no_labels(path, f"{kind.replace('_', ' ')}: {title}"))
            continue
        if kind == "confusion_matrix":
            written.append(
                plot_confusion_matrix(
                    confusion, names, path, f"confusion matrix\n{title}"
                )
            )
        elif kind == "heatmap":
            written.append(
                plot_metrics_heatmap(
                    confusion, names, path, f"precision / recall / F1\n{title}"
                )
            )
        elif kind == "bar_graph":
            accuracies = class_accuracies(logits, labels, num_classes)
            written.append(
                plot_class_accuracy(
                    accuracies,
                    confusion,
                    names,
                    path,
                    f"per-class top-1 accuracy\n{title}",
                )
            )
        else:
            raise ValueError(f"unknown plot kind {kind!r}; known: {PLOT_KINDS}")
    return written
