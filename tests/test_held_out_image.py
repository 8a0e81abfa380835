"""The held-out-image diagnostic's steps: which image leaves, the loss per image, the relative losses."""

from pathlib import Path

import numpy as np
import pytest

from ssimlib.artifacts import ArtifactError
from ssimlib.data import AnomalyDataset
from ssimlib.experiments import held_out_image

STEMS = ["ITIA1141", "ITIA1142", "ITIA1145"]
# Image i is flat at (i + 1) / 10, so the mean pixel value of any crop of it is (i + 1) / 10.
IMAGES = [np.full((40, 50, 1), (i + 1) / 10, np.float32) for i in range(len(STEMS))]


def _dataset():
    return AnomalyDataset("nanotwice", list(IMAGES), [], [], np.zeros(0, int), [],
                          train_paths=[Path(f"/data/Normal/{stem}.tif") for stem in STEMS])


class _MeanModel:
    """A stand-in whose 'loss' on a batch is its mean pixel value."""

    def test_on_batch(self, x, y):
        return float(np.mean(x))


def test_the_named_image_leaves_and_the_others_keep_their_order():
    four = held_out_image.without_image(_dataset(), "ITIA1142")
    assert [p.stem for p in four.train_paths] == ["ITIA1141", "ITIA1145"]
    assert [float(image[0, 0, 0]) for image in four.train_images] == pytest.approx([0.1, 0.3])
    assert len(_dataset().train_images) == 3  # the dataset given is not changed


def test_an_image_that_is_not_there_is_named_with_the_ones_that_are():
    with pytest.raises(ValueError, match="no training image named 'ITIA9999'; the training images are ITIA1141, "
                                         "ITIA1142, ITIA1145"):
        held_out_image.without_image(_dataset(), "ITIA9999")


def test_each_image_gets_the_loss_of_its_own_crops():
    test_patches = np.full((5, 16, 16, 1), 0.7, np.float32)
    losses = held_out_image.image_losses(_MeanModel(), _dataset(), 16, n_patches=4, test_patches=test_patches)
    assert losses == pytest.approx({"ITIA1141": 0.1, "ITIA1142": 0.2, "ITIA1145": 0.3, "defect-free test crops": 0.7})


def test_losses_are_relative_to_the_mean_of_the_images_seen():
    losses = {"ITIA1141": 0.1, "ITIA1142": 0.3, "ITIA1145": 0.4, "defect-free test crops": 0.5}
    # seen: ITIA1141 and ITIA1142, mean 0.2
    assert held_out_image.relative_losses(losses, "ITIA1145") == pytest.approx(
        {"ITIA1141": 0.5, "ITIA1142": 1.5, "ITIA1145": 2.0, "defect-free test crops": 2.5})


def test_a_missing_reference_is_named_before_any_data_is_read_or_model_trained(tmp_path):
    with pytest.raises(ArtifactError, match="ssim_ae-fresh.json: no such model manifest"):
        held_out_image.run_diagnostic(tmp_path / "r.json", data_root=tmp_path / "no-data",
                                      references=(tmp_path / "ssim_ae-fresh",))
    assert not (tmp_path / "r.json").exists()


def test_the_table_puts_an_image_in_each_row_and_a_model_in_each_column():
    relative = {"ITIA1141": 1.0, "ITIA1145": 1.25, "defect-free test crops": 1.5}
    results = {
        "held_out": "ITIA1145",
        "held_out_model": {"relative_losses": relative, "epochs": 50, "val_loss": 0.15, "test_images": 40,
                           "stride": 30, "pixel_auroc": 0.9, "au_pro_0_3": 0.8, "median_region_overlap_fpr_0_05": 0.7},
        "reference_models": [{"model": "/m/ssim_ae-fresh", "epochs": 200,
                              "relative_losses": {"ITIA1141": 1.0, "ITIA1145": 0.99, "defect-free test crops": 1.2}}],
    }
    assert held_out_image.format_results(results) == [
        "                        held-out model  ssim_ae-fresh (200 epochs)",
        "ITIA1141                         1.000                       1.000",
        "ITIA1145 (held out)              1.250                       0.990",
        "defect-free test crops           1.500                       1.200",
        "held-out model (50 epochs, validation loss 0.1500) on all 40 test images at stride 30: pixel AUROC 0.900, "
        "AU-PRO@0.3 0.800, median overlap at FPR 5% 0.70",
    ]


def test_each_image_held_out_has_a_results_file_of_its_own():
    assert held_out_image.results_file() == held_out_image.DEFAULT_RESULTS
    assert held_out_image.results_file("ITIA1141") == held_out_image.DEFAULT_RESULTS.with_name(
        "nanotwice_held_out-ITIA1141.json")
