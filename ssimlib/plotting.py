"""One matplotlib style for every figure of the study, and the figure helpers the notebooks share."""

from pathlib import Path

import matplotlib as mpl
import numpy as np
from skimage.segmentation import find_boundaries

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "image.cmap": "gray",
    "image.interpolation": "nearest",
    "axes.prop_cycle": mpl.cycler(color=["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"]),
    "svg.hashsalt": "ssimlib",
    "pdf.compression": 9,
}


def use_style():
    """Apply the study's style to matplotlib."""
    mpl.rcParams.update(STYLE)


def save_figure(fig, name, figures_dir, pdf=True):
    """Save ``fig`` as ``figures_dir/name.png`` (and ``.pdf``); returns the PNG path, or None if ``figures_dir`` is
    empty."""
    if not figures_dir:
        return None
    folder = Path(figures_dir)
    folder.mkdir(parents=True, exist_ok=True)
    png = folder / f"{name}.png"
    fig.savefig(png, metadata={"Software": None})
    if pdf:
        fig.savefig(folder / f"{name}.pdf", metadata={"Creator": None, "Producer": None, "CreationDate": None})
    return png


def show_image(ax, image, title=None, vmin=0.0, vmax=1.0, cmap=None):
    """Draw an ``(H, W)`` or ``(H, W, C)`` image without axes."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    ax.imshow(image, vmin=vmin, vmax=vmax, cmap=cmap)
    ax.set_axis_off()
    if title:
        ax.set_title(title)


def outline(ax, mask, color="#00FF00"):
    """Draw the boundary of a boolean mask on ``ax``."""
    boundary = find_boundaries(np.asarray(mask, bool), mode="inner")
    overlay = np.zeros(boundary.shape + (4,))
    overlay[boundary] = mpl.colors.to_rgba(color)
    ax.imshow(overlay)


def plot_roc(ax, curves, title=None):
    """Plot ROC curves: ``curves`` maps a label to ``(fpr, tpr, auc)``."""
    for label, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{label} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
    ax.set_xlabel("false positive rate (defect-free pixels)")
    ax.set_ylabel("true positive rate (defect pixels)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right")
    if title:
        ax.set_title(title)


def plot_losses(ax, losses, mark=None, title=None):
    """Training loss per epoch on a log scale: ``losses`` maps a label to one loss per epoch (epoch 1 first).

    ``mark``: an epoch drawn as a dotted vertical line (e.g. the end of a training stage).
    """
    for label, values in losses.items():
        ax.plot(np.arange(1, len(values) + 1), values, label=label)
    if mark:
        ax.axvline(mark, color="0.5", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.legend(loc="upper right")
    if title:
        ax.set_title(title)
