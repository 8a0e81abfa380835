"""Where one MVTec AD run's data, stored model and results file live, and whether its model is finished.

Keras-free, so that ``python -m ssimlib batch`` plans its runs without loading a backend.
"""

from pathlib import Path

from ssimlib import artifacts
from ssimlib.paths import data_root as resolve_data_root


def category_root(category, data_root=None):
    """The folder that holds ``<category>/train/good`` for ``category``.

    ``data_root`` if given; else ``$SSIMLIB_DATA/mvtec_ad`` or ``../shared/data/mvtec_ad``
    if the category is there, else the first ``mvtec_ad*`` folder beside it that has the
    category (the shared copies ``mvtec_ad_grid_256``, ``mvtec_ad_bottle_320``).
    """
    if data_root:
        return Path(data_root).expanduser()
    default = resolve_data_root("mvtec_ad")
    candidates = [default] + sorted(p for p in default.parent.glob("mvtec_ad*") if p != default)
    for folder in candidates:
        if (folder / category / "train").is_dir():
            return folder
    raise FileNotFoundError(
        f"no {category}/train under {default} or {default.parent}/mvtec_ad*; pass the folder that holds it "
        "(data_root: -p data_root DIR for a notebook, --data-root DIR for batch) or set SSIMLIB_DATA to the folder "
        "holding mvtec_ad/"
    )


def run_name(category, loss, setup):
    """``<category>-<loss>-<setup>``, e.g. ``grid-ssim-cvpr2019``: names one run's results file, model and figures."""
    return f"{category}-{loss}-{setup}"


def results_path(results_dir, category, loss, setup):
    """``results_dir/<run_name>.json``: where notebook 04 writes the result of one (category, model, setup)."""
    return Path(results_dir) / f"{run_name(category, loss, setup)}.json"


def model_stem(category, loss, setup, models_root=None):
    """Stem of the stored model of (``category``, ``loss``, ``setup``): ``models/mvtec/<run_name>``."""
    return artifacts.study_model("mvtec", run_name(category, loss, setup), models_root)


def model_finished(manifest):
    """Whether a stored model's ``manifest`` says it had every epoch of its schedule (False for None: no model)."""
    if not manifest:
        return False
    training = manifest["training"]
    return training.get("epochs_done", 0) >= training.get("schedule_epochs", float("inf"))
