"""Pictures of a run, for people who would rather look than read: the learning curves of
`history.csv` and a confusion matrix, as PNG bytes.

Drawn with matplotlib (the `plots` extra; see BUILD.md for why), through its
object-oriented API and the Agg canvas, so that drawing changes no process-wide state
(no pyplot, no backend switch). `available()` says whether it is installed.
"""

import io
from typing import Sequence

DPI = 100


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _png(figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI, bbox_inches="tight")
    return out.getvalue()


def learning_curves(history: Sequence[dict[str, float]]) -> bytes:
    """Loss and accuracy per epoch, training beside validation, with the best epoch
    (lowest val_loss) marked, and the learning rate where it changed."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [int(row["epoch"]) for row in history]
    best = min(history, key=lambda row: row["val_loss"])["epoch"]
    rates = [row.get("learning_rate") for row in history]
    changing = None not in rates and len(set(rates)) > 1
    figure = Figure(figsize=(12 if changing else 8, 3.5))
    axes = figure.subplots(1, 3 if changing else 2)
    for ax, key in zip(axes, ("loss", "accuracy"), strict=False):
        ax.plot(epochs, [row[key] for row in history], "o-", label=f"training {key}")
        ax.plot(epochs, [row[f"val_{key}"] for row in history], "o-", label=f"validation {key}")
        ax.axvline(best, color="grey", linestyle=":", label=f"best epoch ({best})")
        ax.set_title(key)
        ax.legend()
    if changing:
        axes[2].plot(epochs, rates, "o-")
        axes[2].set_title("learning rate (end of epoch)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _png(figure)


def confusion_matrix(
    matrix: Sequence[Sequence[int]], class_names: Sequence[str], title: str
) -> bytes:
    """The matrix as a heat map, row = true class, column = predicted, each cell's count
    written in it."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    size = 1.2 + 0.9 * len(class_names)
    figure = Figure(figsize=(size + 1, size))
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=ax).locator = MaxNLocator(integer=True)
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    top = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            color = "white" if count > top / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=color)
    return _png(figure)
