"""Model artifacts: round trip, no optimizer state, hash check, clear errors; the study's training job."""

import hashlib
import json
import re

import keras
import numpy as np
import pytest

from ssimlib import artifacts
from ssimlib.models import ConvAutoencoder, VariationalAutoencoder
from ssimlib.train import compile_autoencoder

X = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)


def _trained(model, loss="ssim"):
    compile_autoencoder(model, loss)
    model.train_on_batch(X, X)  # builds Adam's state, which must not end up in the artifact
    return model


def _save(model, root, name="m"):
    stem = artifacts.study_model("toy", name, root)
    return artifacts.save_model(model, stem, artifacts.architecture_of(model), {"epochs_done": 1, "loss": [0.5]})


@pytest.mark.parametrize("make", [lambda: ConvAutoencoder(32, 1, 8), lambda: VariationalAutoencoder(32, 1, 8, seed=1)])
def test_round_trip_gives_the_same_outputs(tmp_path, make):
    keras.utils.set_random_seed(0)
    model = _trained(make(), "vae" if isinstance(make(), VariationalAutoencoder) else "ssim")
    manifest = _save(model, tmp_path)
    loaded, loaded_manifest = artifacts.load_model(tmp_path / "toy" / "m")
    assert type(loaded) is type(model) and loaded_manifest == manifest
    np.testing.assert_array_equal(np.asarray(loaded.predict_on_batch(X)), np.asarray(model.predict_on_batch(X)))
    assert manifest["machine"]["cpu"] and manifest["training"]["epochs_done"] == 1
    assert json.loads((tmp_path / "toy" / "m.json").read_text())["sha256"] == artifacts.sha256(
        tmp_path / "toy" / "m.weights.h5")


def test_artifact_holds_no_optimizer_state(tmp_path):
    model = _trained(ConvAutoencoder(32, 1, 8))
    _save(model, tmp_path)
    with_adam = tmp_path / "with_adam.weights.h5"
    model.save_weights(with_adam)  # a compiled model's own file carries Adam's moments: about 3x the size
    size = (tmp_path / "toy" / "m.weights.h5").stat().st_size
    assert size < 0.5 * with_adam.stat().st_size


def test_missing_and_altered_files_are_named(tmp_path):
    with pytest.raises(artifacts.ArtifactError, match=r"m\.json: no such model manifest"):
        artifacts.load_model(tmp_path / "toy" / "m")
    _save(_trained(ConvAutoencoder(32, 1, 8)), tmp_path)
    weights = tmp_path / "toy" / "m.weights.h5"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(artifacts.ArtifactError, match=r"m\.weights\.h5: sha256 .* differs from its manifest"):
        artifacts.load_model(tmp_path / "toy" / "m")
    weights.unlink()
    with pytest.raises(artifacts.ArtifactError, match=r"m\.weights\.h5: the weights of the manifest m\.json are "
                                                      r"missing$"):
        artifacts.load_model(tmp_path / "toy" / "m")
    assert artifacts.list_models("toy", tmp_path) == ["m"]
    # a tester's: a manifest copied under another name was told to lack weights "its manifest names", which it
    # does not name
    (tmp_path / "toy" / "copy.json").write_text((tmp_path / "toy" / "m.json").read_text())
    with pytest.raises(artifacts.ArtifactError, match=r"copy\.weights\.h5: the weights of the manifest copy\.json "
                                                      r"are missing \(the manifest names m\.weights\.h5: renamed"):
        artifacts.load_model(tmp_path / "toy" / "copy")
    # a tester's: weights without their manifest were not named
    (tmp_path / "toy" / "copy.json").rename(tmp_path / "toy" / "orphan.json")
    (tmp_path / "toy" / "orphan.json").unlink()
    (tmp_path / "toy" / "orphan.weights.h5").write_bytes(b"weights")
    with pytest.raises(artifacts.ArtifactError, match=re.escape(
            "orphan.json: no such model manifest (train the model first, see README); its weights orphan.weights.h5 "
            "lie there without it: restore the manifest (git checkout -- <file>, for a committed model) or train "
            "anew")):
        artifacts.load_model(tmp_path / "toy" / "orphan")


@pytest.mark.parametrize("key, value, message", [
    ("patch_size", "32", r"m\.json: architecture patch_size '32': expected a positive integer"),
    ("latent_dim", 0, r"m\.json: architecture latent_dim 0: expected a positive integer"),
    ("patch_size", 48, r"m\.json: architecture patch_size must be 8 \* 2\*\*k"),
    ("class", "Autoencoder", r"m\.json: architecture class 'Autoencoder': expected one of ConvAutoencoder"),
    # a valid architecture that is not the one of the weights: the shapes that differ, in one line
    ("channels", 3, r"m\.weights\.h5: does not fit the architecture in its manifest m\.json \(patch_size 32, "
                    r"channels 3, latent_dim 8\): the file holds arrays of shape \(1,\), \(3, 3, 1, 32\) where "
                    r"the architecture has \(3,\), \(3, 3, 3, 32\)"),
    ("latent_dim", 9,
     r"holds arrays of shape \(8,\), \(8, 8, 32, 8\) where the architecture has \(8, 8, 32, 9\), \(9,\)"),
    ("output", "tanh", r"m\.json: architecture output 'tanh': expected one of linear, sigmoid"),
])
def test_an_edited_architecture_is_named_in_one_line(tmp_path, key, value, message):
    _save(_trained(ConvAutoencoder(32, 1, 8)), tmp_path)
    manifest_path = tmp_path / "toy" / "m.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["architecture"][key] = value
    del manifest["architecture_sha256"]  # as a manifest saved before it was recorded: the edit is named by its parts
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(artifacts.ArtifactError, match=message) as raised:
        artifacts.load_model(tmp_path / "toy" / "m")
    assert "\n" not in str(raised.value)


def test_a_sigmoid_model_is_stored_as_one_and_loads_as_one(tmp_path):
    model = _trained(ConvAutoencoder(32, 1, 8, output="sigmoid"))
    _save(model, tmp_path)
    manifest = json.loads((tmp_path / "toy" / "m.json").read_text())
    assert manifest["architecture"]["output"] == "sigmoid"
    loaded, _ = artifacts.load_model(tmp_path / "toy" / "m")
    x = np.random.default_rng(1).random((1, 32, 32, 1), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
    # its weights fit a linear network too: the manifest is what tells them apart
    del manifest["architecture"]["output"], manifest["architecture_sha256"]  # (without the digest of the save)
    (tmp_path / "toy" / "m.json").write_text(json.dumps(manifest))
    linear, _ = artifacts.load_model(tmp_path / "toy" / "m")
    assert linear.output_activation == "linear"
    np.testing.assert_allclose(1 / (1 + np.exp(-np.asarray(linear(x), np.float64))), np.asarray(model(x)), rtol=1e-5)
    assert "output" not in artifacts.architecture_of(ConvAutoencoder(32, 1, 8))  # as every committed manifest


def test_study_job_exports_and_continues_from_the_artifact(nanotwice_root, tmp_path, monkeypatch):
    from ssimlib import train as train_module
    from ssimlib.experiments import nanotwice, studies

    monkeypatch.setattr(train_module, "cpu_label", lambda: "CPU A (AVX2, 2 cores)")

    schedule = dict(n_patches=32, patch_size=32, latent_dim=8, epochs=3)
    lines = []
    kwargs = dict(data_root=nanotwice_root, models_root=tmp_path / "models", export_every=2, log=lines.append)
    first = studies.train_nanotwice_model("SSIM-AE", schedule, checkpoint_dir=tmp_path / "a", **kwargs)
    assert first["training"]["epochs_done"] == 3 and first["training"]["complete"]
    assert first["training"]["settings"]["window"] == "uniform"
    assert sum("exported after epoch" in line for line in lines) == 2  # epoch 2 (export_every), then the end
    assert nanotwice.schedule_label(first).endswith(" h on CPU A (AVX2, 2 cores)")
    # A machine without the checkpoint continues from the committed artifact, with a fresh Adam state.
    monkeypatch.setattr(train_module, "cpu_label", lambda: "CPU B (AMX, 2 cores)")
    longer = studies.train_nanotwice_model("SSIM-AE", {**schedule, "epochs": 4}, checkpoint_dir=tmp_path / "b",
                                           **kwargs)
    training = longer["training"]
    assert training["epochs_done"] == 4 and training["optimizer_restarts"] == [3]
    assert training["loss"][:3] == first["training"]["loss"]
    assert training["machines"] == [{"from_epoch": 1, "cpu": "CPU A (AVX2, 2 cores)"},
                                    {"from_epoch": 4, "cpu": "CPU B (AMX, 2 cores)"}]
    assert nanotwice.schedule_label(longer).endswith(
        " h on CPU A (AVX2, 2 cores) for epochs 1-3 and CPU B (AMX, 2 cores) for epoch 4")
    model, manifest = artifacts.load_model(tmp_path / "models" / "nanotwice" / "ssim_ae")
    assert manifest["study"] == "nanotwice" and manifest["name"] == "ssim_ae"
    assert model.latent_dim == 8
    # A finished model is not trained again, nor copied into a checkpoint, on a machine without its checkpoint.
    again = studies.train_nanotwice_model("SSIM-AE", {**schedule, "epochs": 4}, checkpoint_dir=tmp_path / "c", **kwargs)
    assert again == longer and not (tmp_path / "c").exists()


def test_a_folder_of_models_given_for_a_model_is_named_with_an_example(tmp_path):
    # a tester's: `detect models/mvtec ...` said "models/mvtec.json: no such model manifest", a file never typed
    from ssimlib.artifacts import ArtifactError, load_model

    (tmp_path / "grid-ssim.json").write_text("{}")
    (tmp_path / "grid-ssim.weights.h5").write_bytes(b"")
    (tmp_path / "a-metrics.json").write_text("{}")  # no model: not the example
    with pytest.raises(ArtifactError, match=rf"^{re.escape(str(tmp_path))}: a folder; expected a model, .*e\.g\. "
                                            rf"{re.escape(str(tmp_path / 'grid-ssim'))}$"):
        load_model(tmp_path)


def test_weights_that_cannot_be_read_are_named_in_one_line(tmp_path):
    # a tester's: a folder in the place of the weights file gave an IsADirectoryError traceback
    _save(_trained(ConvAutoencoder(32, 1, 8)), tmp_path)
    weights = tmp_path / "toy" / "m.weights.h5"
    weights.unlink()
    weights.mkdir()
    with pytest.raises(artifacts.ArtifactError, match=r"^.*m\.weights\.h5: the weights its manifest m\.json names "
                                                      r"cannot be read \(Is a directory\)$"):
        artifacts.load_model(tmp_path / "toy" / "m")


@pytest.mark.parametrize("drop", ["training", "epochs_done", "settings", "loss", "seconds"])
def test_a_stored_model_without_its_training_record_is_named_not_continued(nanotwice_root, tmp_path, drop):
    # a tester's: a committed manifest without training.epochs_done stopped train-study with a KeyError traceback
    from ssimlib.experiments import studies

    schedule = dict(n_patches=32, patch_size=32, latent_dim=8, epochs=1)
    kwargs = dict(data_root=nanotwice_root, models_root=tmp_path / "models", log=lambda line: None)
    studies.train_nanotwice_model("SSIM-AE", schedule, checkpoint_dir=tmp_path / "a", **kwargs)
    manifest_path = tmp_path / "models" / "nanotwice" / "ssim_ae.json"
    manifest = json.loads(manifest_path.read_text())
    if drop == "training":
        del manifest["training"]
    else:
        del manifest["training"][drop]
    manifest_path.write_text(json.dumps(manifest))
    what = "its training record is missing or not an object" if drop == "training" else \
        f"its training record lacks {drop} "
    with pytest.raises(artifacts.ArtifactError, match=rf"^{re.escape(str(manifest_path))}: {what}"):
        studies.train_nanotwice_model("SSIM-AE", {**schedule, "epochs": 2}, checkpoint_dir=tmp_path / "b", **kwargs)


def test_an_architecture_edited_after_the_save_is_named(tmp_path):
    # a tester's: "output": "sigmoid" added to a linear model's manifest loaded its weights under a sigmoid, silently
    _save(_trained(ConvAutoencoder(32, 1, 8)), tmp_path)
    path = tmp_path / "toy" / "m.json"
    manifest = json.loads(path.read_text())
    expected = hashlib.sha256(json.dumps(manifest["architecture"], sort_keys=True).encode()).hexdigest()
    assert manifest["architecture_sha256"] == expected
    path.write_text(json.dumps({**manifest, "architecture": {**manifest["architecture"], "output": "sigmoid"}}))
    with pytest.raises(artifacts.ArtifactError, match=r"m\.json: its architecture is not the one its weights were "
                                                      r"saved with"):
        artifacts.load_model(tmp_path / "toy" / "m")
    del manifest["architecture_sha256"]  # as the models saved before it was recorded: loaded as they are
    path.write_text(json.dumps(manifest))
    assert artifacts.load_model(tmp_path / "toy" / "m")[0].output_activation == "linear"


def test_a_folder_named_as_a_manifest_is_named_in_one_line(tmp_path):
    # a tester's: a folder X.json beside X.weights.h5 (or in a killed save's staging folder) gave IsADirectoryError
    (tmp_path / "toy" / "m.json").mkdir(parents=True)
    with pytest.raises(artifacts.ArtifactError, match=r"m\.json: cannot be read as a manifest \(Is a directory\)$"):
        artifacts.read_manifest(tmp_path / "toy" / "m")
    (tmp_path / "toy" / "m.json").rmdir()
    _save(_trained(ConvAutoencoder(32, 1, 8)), tmp_path)
    staged = artifacts.staging_folder(tmp_path / "toy" / "m") / "m.json"
    staged.mkdir(parents=True)
    assert artifacts.read_manifest(tmp_path / "toy" / "m")["architecture"]["latent_dim"] == 8  # the stale save gone
    assert not staged.parent.exists()
