"""MVTec AD models in the model store: trained by the mvtec study, checked against the preset they are evaluated
with."""

import json
import re

import numpy as np
import pytest
import skimage.io

from ssimlib import artifacts
from ssimlib.experiments import mvtec, mvtec_runs, presets, studies
from ssimlib.synthetic import write_synthetic_category


@pytest.fixture
def tiny_schedule(monkeypatch):
    # 32 patches for 1 epoch: enough to write a model and its manifest
    for key, value in {"n_patches": 32, "batch_size": 16, "epochs": 1, "validation_fraction": 0.25}.items():
        monkeypatch.setitem(mvtec.SCHEDULE, key, value)


def test_a_stored_model_is_checked_against_preset_and_validation_split(tmp_path, tiny_schedule):
    root = tmp_path / "data"
    write_synthetic_category(root, "synth", n_train=8, n_good=1, n_defective=1, size=64)
    preset = presets.configure("synth", patch_size=32, latent_dim=8, setup="cvpr2019")
    manifest = mvtec.train_category_model(root, "synth", preset, models_root=tmp_path / "models",
                                          checkpoint_dir=tmp_path / "checkpoint", log=lambda line: None)
    stem = tmp_path / "models" / "mvtec" / "synth-ssim-cvpr2019"
    assert artifacts.model_files(stem)[0].exists()
    training = manifest["training"]
    assert (manifest["study"], manifest["category"], training["method"]) == ("mvtec", "synth", "SSIM-AE")
    assert training["epochs_done"] == 1 and training["preset"]["patch_size"] == 32
    # the data folder and category, not this machine's absolute path
    assert training["data"] == "data/synth: 6 of 8 train/good images (2 held out for the threshold)"
    assert mvtec.schedule_label(manifest) == "1 of 1 epochs of 32 patches (batch 16, learning rate 0.0002)"

    model, _ = mvtec.load_category_model(stem, preset, 0.25, 0)
    assert model.patch_size == 32
    with pytest.raises(artifacts.ArtifactError, match="patch_size"):
        mvtec.load_category_model(stem, presets.configure("synth", patch_size=64, latent_dim=8, setup="cvpr2019"),
                                  0.25, 0)
    with pytest.raises(artifacts.ArtifactError, match="validation_fraction"):
        mvtec.load_category_model(stem, preset, 0.1, 0)  # a threshold from images the model was trained on
    # a tester's: evaluated on another train/good, the same split held out images the model had trained on
    assert mvtec.load_category_model(stem, preset, 0.25, 0, root / "synth")[0].patch_size == 32
    first = sorted((root / "synth" / "train" / "good").iterdir())[0]
    first.write_bytes(first.read_bytes()[:-1] + b"\0")  # edited in place: as many images, other pixels
    with pytest.raises(artifacts.ArtifactError, match=r"trained on other train/ images than .*synth holds now "
                       r"\(recorded, now\): \{'train/ images \(sha256\)'"):
        mvtec.load_category_model(stem, preset, 0.25, 0, root / "synth")
    manifest_path = artifacts.model_files(stem)[1]  # a model saved before its images' sha256 was recorded
    older = json.loads(manifest_path.read_text())
    del older["training"]["data_sha256"]
    manifest_path.write_text(json.dumps(older))
    mvtec.load_category_model(stem, preset, 0.25, 0, root / "synth")  # as many images: nothing to tell
    first.unlink()
    with pytest.raises(artifacts.ArtifactError, match=re.escape("(recorded, now): {'train/good images': (8, 7)}")):
        mvtec.load_category_model(stem, preset, 0.25, 0, root / "synth")


def test_the_mvtec_study_goes_on_past_a_failing_category(tmp_path, tiny_schedule, capsys):
    root = tmp_path / "data"
    write_synthetic_category(root, "synth", n_train=8, n_good=1, n_defective=1, size=128)
    code = studies.main(["mvtec", "--categories", "absent", "synth", "--models", "SSIM-AE", "--data-root", str(root),
                         "--models-root", str(tmp_path / "models")])
    out = capsys.readouterr().out
    assert code == 1 and "absent SSIM-AE: FAILED" in out and "failed: absent SSIM-AE" in out
    assert "synth SSIM-AE: 1 of 1 epochs" in out
    assert artifacts.read_manifest(tmp_path / "models" / "mvtec" / "synth-ssim-cvpr2019")["training"]["complete"]


def test_category_root_finds_the_shared_copies(tmp_path, monkeypatch):
    monkeypatch.setenv("SSIMLIB_DATA", str(tmp_path))
    (tmp_path / "mvtec_ad_grid_256" / "grid" / "train").mkdir(parents=True)
    (tmp_path / "mvtec_ad" / "bottle" / "train").mkdir(parents=True)
    assert mvtec_runs.category_root("grid") == tmp_path / "mvtec_ad_grid_256"
    assert mvtec_runs.category_root("bottle") == tmp_path / "mvtec_ad"  # the full dataset first
    assert mvtec_runs.category_root("grid", tmp_path / "mine") == tmp_path / "mine"
    with pytest.raises(FileNotFoundError, match="no tile/train"):
        mvtec_runs.category_root("tile")


def test_the_queue_runs_every_study_in_order_and_reports_a_failure(monkeypatch):
    ran = []
    monkeypatch.setattr(studies, "train_nanotwice_model",
                        lambda method, *args, **kwargs: ran.append(("nanotwice", method)) or {
                            "training": {"epochs_done": 1, "schedule_epochs": 1, "loss": [0.1], "seconds": 1.0}})
    monkeypatch.setattr(studies, "_train_checkerboard", lambda args, schedule: ran.append(("checkerboard",)) or 0)
    monkeypatch.setattr(studies.sensitivity, "run_campaign", lambda *args, **kwargs: ran.append(("table2",)))
    monkeypatch.setattr(studies, "_train_mvtec", lambda args, schedule: ran.append(("mvtec",)) or 1)
    assert studies.main(["queue"]) == 1  # the mvtec study reported a failed category
    assert ran == [("nanotwice", m) for m in ("SSIM-AE", "L2-AE", "VAE", "FM-AE")] + [
        ("checkerboard",), ("table2",), ("mvtec",)]


def test_the_mvtec_study_trains_every_model_to_the_first_stage_before_any_goes_on(tmp_path, tiny_schedule, monkeypatch,
                                                                                   capsys):
    monkeypatch.setitem(mvtec.SCHEDULE, "epochs", 2)
    monkeypatch.setattr(studies, "MVTEC_FIRST_STAGE", 1)
    monkeypatch.setenv("SSIMLIB_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "data"
    write_synthetic_category(root, "synth", n_train=8, n_good=1, n_defective=1, size=128)
    args = ["--categories", "synth", "--data-root", str(root)]
    assert studies.main(["mvtec", *args, "--models-root", str(tmp_path / "staged")]) == 0
    done = [line.split(",")[0] for line in capsys.readouterr().out.splitlines() if line.startswith("synth ")]
    assert done == ["synth SSIM-AE: 1 of 2 epochs", "synth L2-AE: 1 of 2 epochs",
                    "synth SSIM-AE: 2 of 2 epochs", "synth L2-AE: 2 of 2 epochs"]
    # The second stage continues the first one's checkpoint, Adam's state included: the same weights as
    # two epochs in one go (checkpoints elsewhere).
    monkeypatch.setattr(studies, "MVTEC_FIRST_STAGE", 2)
    monkeypatch.setenv("SSIMLIB_CACHE", str(tmp_path / "cache-straight"))
    assert studies.main(["mvtec", *args, "--models", "SSIM-AE", "--models-root", str(tmp_path / "straight")]) == 0
    staged, manifest = artifacts.load_model(tmp_path / "staged" / "mvtec" / "synth-ssim-cvpr2019")
    straight, _ = artifacts.load_model(tmp_path / "straight" / "mvtec" / "synth-ssim-cvpr2019")
    assert manifest["training"]["optimizer_restarts"] == [] and manifest["training"]["complete"]
    for a, b in zip(staged.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_an_unfinished_model_is_trained_to_its_end_and_never_overwritten(tmp_path, tiny_schedule):
    # What notebook 04 does with train_missing for a model stopped early (a killed job's last export).
    root = tmp_path / "data"
    write_synthetic_category(root, "synth", n_train=8, n_good=1, n_defective=1, size=64)
    preset = presets.configure("synth", patch_size=32, latent_dim=8, setup="cvpr2019")
    kwargs = dict(models_root=tmp_path / "models", checkpoint_dir=tmp_path / "checkpoint", log=lambda line: None)
    stopped = mvtec.train_category_model(root, "synth", preset, {"epochs": 3}, until=1, **kwargs)
    assert not mvtec_runs.model_finished(stopped) and stopped["training"]["epochs_done"] == 1
    with pytest.raises(artifacts.ArtifactError, match="learning_rate"):
        mvtec.finish_category_model(root, "synth", preset, {"epochs": 3, "learning_rate": 1e-3}, **kwargs)
    with pytest.raises(artifacts.ArtifactError, match="schedule epochs"):
        mvtec.finish_category_model(root, "synth", preset, {"epochs": 5}, **kwargs)
    finished = mvtec.finish_category_model(root, "synth", preset, {"epochs": 3}, **kwargs)
    assert mvtec_runs.model_finished(finished) and len(finished["training"]["loss"]) == 3
    assert finished["training"]["loss"][0] == stopped["training"]["loss"][0]
    assert mvtec.finish_category_model(root, "synth", preset, {"epochs": 3}, **kwargs)["sha256"] == finished["sha256"]
    # the same number of training images, one of them edited: a model of other images is not passed off as this one
    image = root / "synth" / "train" / "good" / "000.png"
    skimage.io.imsave(image, 255 - skimage.io.imread(image), check_contrast=False)
    with pytest.raises(artifacts.ArtifactError, match=r"training images \(sha256\)"):
        mvtec.finish_category_model(root, "synth", preset, {"epochs": 3}, **kwargs)
    assert not mvtec_runs.model_finished(None)
