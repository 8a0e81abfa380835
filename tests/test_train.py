"""Training: determinism, resume after an interruption, learning something, bad settings."""

import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest

from ssimlib import train as train_module
from ssimlib.models import ConvAutoencoder
from ssimlib.synthetic import checkerboard_dataset
from ssimlib.train import epoch_line, record_machine, train

PATCHES = checkerboard_dataset(24, 0, size=32, seed=0)[0]


def _model():
    keras.utils.set_random_seed(0)
    return ConvAutoencoder(32, 1, 16)


def test_loss_decreases_and_history():
    model = _model()
    history = train(model, PATCHES, loss="ssim", epochs=6, batch_size=8, progress=False)
    assert len(history["loss"]) == 6 and history["seconds"] > 0
    assert history["loss"][-1] < history["loss"][0]


def test_epoch_line_rates_the_recent_epochs_of_this_machine():
    # 10 of 20 epochs of 1,000 patches: 1,000 s in all (a slower machine), the last two at 10 s each here.
    history = {"loss": [0.5] * 10, "seconds": 1000.0, "epoch_seconds": [10.0, 10.0]}
    assert epoch_line(history, 20, 1000) == "epoch 10/20  loss 0.50000  100 patches/s  0.0 h left"
    history = {"loss": [0.5] * 10, "seconds": 2000.0}  # no epoch timed by this run: the whole history's mean
    assert epoch_line(history, 20, 1000) == "epoch 10/20  loss 0.50000  5 patches/s  0.6 h left"


@pytest.mark.parametrize("loss", ["l2", "ms_ssim", "ssim_l1"])
def test_other_losses_train(loss):
    history = train(_model(), PATCHES, loss=loss, epochs=2, batch_size=8, progress=False)
    assert np.isfinite(history["loss"]).all()


TRAIN_AND_PRINT_WEIGHTS = """
import ssimlib, keras, numpy as np
from ssimlib.models import ConvAutoencoder
from ssimlib.synthetic import checkerboard_dataset
from ssimlib.train import train
keras.utils.set_random_seed(0)
model = ConvAutoencoder(32, 1, 16)
train(model, checkerboard_dataset(64, 0, size=32, seed=0)[0], epochs=3, batch_size=16, progress=False)
print(np.concatenate([np.asarray(w).ravel() for w in model.weights]).tobytes().hex())
"""


def test_two_fresh_processes_with_one_seed_end_with_identical_weights():
    # Bit-identical weights are what lets nbval compare the notebooks' training metrics.
    runs = [
        subprocess.run([sys.executable, "-c", TRAIN_AND_PRINT_WEIGHTS], capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    assert runs[0].stdout == runs[1].stdout and len(runs[0].stdout) > 1000


def test_resume_after_interrupt_equals_uninterrupted_run(tmp_path, killed_after_checkpoints):
    reference = _model()
    train(reference, PATCHES, epochs=4, batch_size=8, progress=False)
    with killed_after_checkpoints(2):
        train(_model(), PATCHES, epochs=4, batch_size=8, checkpoint_dir=tmp_path, progress=False)

    resumed = _model()  # a fresh process would start from new random weights
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = train(resumed, PATCHES, epochs=4, batch_size=8, checkpoint_dir=tmp_path, progress=False)
    assert not [w for w in caught if "Skipping variable loading" in str(w.message)]  # Adam's state was restored
    assert len(history["loss"]) == 4
    assert len(history["epoch_seconds"]) == 2  # the resumed run's own epochs, 3 and 4
    assert history["seconds"] > sum(history["epoch_seconds"]) > 0
    for a, b in zip(reference.weights, resumed.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # a finished run loads and trains no more
    again = train(_model(), PATCHES, epochs=4, batch_size=8, checkpoint_dir=tmp_path, progress=False)
    assert again["loss"] == history["loss"]


def test_history_records_which_epochs_ran_on_which_machine(tmp_path, monkeypatch):
    def run(epochs, cpu):
        monkeypatch.setattr(train_module, "cpu_label", lambda: cpu)
        return train(_model(), PATCHES, epochs=epochs, batch_size=8, checkpoint_dir=tmp_path, progress=False)

    run(2, "CPU A (AVX2, 2 cores)")
    run(3, "CPU A (AVX2, 2 cores)")  # resumed on the same machine: no new entry
    history = run(5, "CPU B (AMX, 2 cores)")
    expected = [{"from_epoch": 1, "cpu": "CPU A (AVX2, 2 cores)"}, {"from_epoch": 4, "cpu": "CPU B (AMX, 2 cores)"}]
    assert history["machines"] == expected
    assert run(5, "CPU C (AVX-512, 2 cores)")["machines"] == expected  # finished: no epoch ran on C
    # a history from before machines were recorded
    assert record_machine({"loss": [0.5, 0.4]})["machines"] == [
        {"from_epoch": 1, "cpu": "not recorded"}, {"from_epoch": 3, "cpu": "CPU C (AVX-512, 2 cores)"}]


@pytest.mark.parametrize("model_name, flags, expected", [
    ("Intel(R) Xeon(R) Processor", ["avx2", "avx512f", "amx_tile"], "Intel Xeon (AMX, 2 cores)"),
    ("Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz", ["avx2", "avx512f"],
     "Intel Xeon Platinum 8481C (AVX-512, 2 cores)"),
    ("AMD EPYC 7B13 64-Core Processor", ["avx", "avx2", "fma"], "AMD EPYC 7B13 64-Core (AVX2, 2 cores)"),
    ("AMD EPYC", [], "AMD EPYC (2 cores)"),
])
def test_cpu_label_names_model_vector_unit_and_cores(monkeypatch, model_name, flags, expected):
    from ssimlib import records

    monkeypatch.setattr(records, "cpu_model", lambda: model_name)
    monkeypatch.setattr(records, "cpu_flags", lambda: flags)
    monkeypatch.setattr(records.os, "cpu_count", lambda: 2)
    assert records.cpu_label() == expected


def test_checkpoint_with_other_settings_is_refused(tmp_path):
    train(_model(), PATCHES, epochs=1, batch_size=8, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="other settings.*loss"):
        train(_model(), PATCHES, loss="l2", epochs=2, batch_size=8, checkpoint_dir=tmp_path, progress=False)


def test_wrong_patch_shape():
    with pytest.raises(ValueError, match=r"patches must be \(N, 32, 32, 1\)"):
        train(_model(), np.zeros((4, 64, 64, 1), np.float32), epochs=1, progress=False)


def test_a_second_training_into_a_held_checkpoint_is_refused_until_the_holder_dies(tmp_path):
    # The holder is another process, killed with SIGKILL as a stopped session kills a job: no stale lock is left.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from ssimlib.train import checkpoint_lock\n"
         f"with checkpoint_lock({str(tmp_path)!r}):\n    print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(train_module.CheckpointBusyError, match=f"pid {holder.pid} on .* is training into"):
            train(_model(), PATCHES, epochs=1, batch_size=8, checkpoint_dir=tmp_path, progress=False)
        assert train_module.read_checkpoint_state(tmp_path) is None  # nothing written beside the holder
    finally:
        holder.kill()
        holder.wait()
    history = train(_model(), PATCHES, epochs=1, batch_size=8, checkpoint_dir=tmp_path, progress=False)
    assert len(history["loss"]) == 1


def _keras_adam_reference(w, gradient, steps, learning_rate, l2=0.0, lr_decay=0.0):
    """Adam as Keras writes it (bias correction in the step size, epsilon outside), by hand in float64:
    ``l2 * w`` added to the gradient, the learning rate ``learning_rate / (1 + lr_decay * step)``."""
    b1, b2, eps = 0.9, 0.999, 1e-7
    w, m, v = np.array(w, float), 0.0, 0.0
    for t in range(1, steps + 1):
        g = gradient + l2 * w
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        alpha = learning_rate / (1 + lr_decay * (t - 1)) * np.sqrt(1 - b2**t) / (1 - b1**t)
        w = w - alpha * m / (np.sqrt(v) + eps)
    return w


@pytest.mark.parametrize("decay, reference", [
    ("l2", {"l2": 0.5}),  # PyTorch's Adam(weight_decay=0.5): 0.5 * w in the gradient
    ("lr", {"lr_decay": 0.5}),  # Keras 2's Adam(decay=0.5): lr / (1 + 0.5 * step)
])
def test_the_weight_decay_readings_step_as_adam_written_by_hand(decay, reference):
    start, gradient = np.array([1.0, -2.0, 0.5]), np.array([0.3, 0.1, -0.2])
    variable = keras.Variable(start.astype("float32"))
    optimizer = train_module.adam(learning_rate=0.1, weight_decay=0.5, decay=decay)
    for _ in range(5):
        optimizer.apply([keras.ops.convert_to_tensor(gradient.astype("float32"))], [variable])
    expected = _keras_adam_reference(start, gradient, 5, 0.1, **reference)
    np.testing.assert_allclose(np.asarray(variable), expected, atol=1e-5)
    assert np.abs(expected - _keras_adam_reference(start, gradient, 5, 0.1)).max() > 0.1  # the decay matters


def test_a_run_of_one_weight_decay_reading_or_output_does_not_continue_another(tmp_path):
    train(_model(), PATCHES, epochs=1, batch_size=8, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="other settings.*decay"):
        train(_model(), PATCHES, epochs=2, batch_size=8, checkpoint_dir=tmp_path, progress=False, decay="lr")
    sigmoid = ConvAutoencoder(32, 1, 16, output="sigmoid")
    with pytest.raises(ValueError, match="other settings.*output"):
        train(sigmoid, PATCHES, epochs=2, batch_size=8, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="decay must be one of decoupled, l2, lr, got 'L2'"):
        train_module.adam(decay="L2")


@pytest.mark.parametrize("decay", ["l2", "lr"])
def test_a_run_of_another_weight_decay_reading_resumes_exactly(tmp_path, decay):
    whole = _model()
    train(whole, PATCHES, epochs=2, batch_size=8, progress=False, decay=decay)
    train(_model(), PATCHES, epochs=1, batch_size=8, checkpoint_dir=tmp_path, progress=False, decay=decay)
    resumed = _model()
    train(resumed, PATCHES, epochs=2, batch_size=8, checkpoint_dir=tmp_path, progress=False, decay=decay)
    for a, b in zip(whole.weights, resumed.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_stored_model_of_another_reading_or_output_is_not_continued_as_a_default_one():
    from ssimlib.store_training import _trained_alike

    plain = train_module.training_settings("ssim", 50, 32, 2e-4, 1e-5, 11, "uniform", 0, 10_000, "fresh")
    for other in ({"decay": "lr"}, {"output": "sigmoid"}):
        assert not _trained_alike({"training": {"settings": {**plain, **other}}}, plain)
        assert not _trained_alike({"training": {"settings": plain}}, {**plain, **other})
    assert _trained_alike({"training": {"settings": {**plain, "epochs": 200}}}, plain)


def test_a_run_killed_between_a_checkpoints_weights_and_its_state_resumes_as_one_uninterrupted(tmp_path,
                                                                                               monkeypatch):
    # a reviewer's: the weights file was replaced, then the state: killed between, epoch 3's weights (Adam's step
    # count too) lay beside epoch 2's state, and the resumed run trained epoch 3 twice
    reference = _model()
    train(reference, PATCHES, epochs=4, batch_size=8, progress=False)
    real_write = train_module._write_atomically

    def die_before_the_third_state(path, write):
        if path.name == train_module.STATE_FILE and "model-3.weights.h5" in {p.name for p in tmp_path.iterdir()}:
            raise KeyboardInterrupt
        real_write(path, write)

    monkeypatch.setattr(train_module, "_write_atomically", die_before_the_third_state)
    with pytest.raises(KeyboardInterrupt):
        train(_model(), PATCHES, epochs=4, batch_size=8, checkpoint_dir=tmp_path, progress=False)
    monkeypatch.undo()
    resumed = _model()
    history = train(resumed, PATCHES, epochs=4, batch_size=8, checkpoint_dir=tmp_path, progress=False)
    assert len(history["epoch_seconds"]) == 2  # epochs 3 and 4, from the checkpoint of epoch 2
    for a, b in zip(reference.weights, resumed.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert [p.name for p in tmp_path.glob("*.weights.h5")] == ["model-4.weights.h5"]  # the older ones removed


def test_a_checkpoint_of_the_format_before_resumes(tmp_path):
    # checkpoints saved before the state named its weights file (model.weights.h5) continue as they did
    import json

    reference = _model()
    train(reference, PATCHES, epochs=2, batch_size=8, progress=False)
    train(_model(), PATCHES, epochs=1, batch_size=8, checkpoint_dir=tmp_path, progress=False)
    state = json.loads((tmp_path / train_module.STATE_FILE).read_text())
    (tmp_path / state.pop("weights")).rename(tmp_path / "model.weights.h5")
    (tmp_path / train_module.STATE_FILE).write_text(json.dumps(state))
    resumed = _model()
    assert len(train(resumed, PATCHES, epochs=2, batch_size=8, checkpoint_dir=tmp_path, progress=False)[
        "epoch_seconds"]) == 1
    for a, b in zip(reference.weights, resumed.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert [p.name for p in tmp_path.glob("*.weights.h5")] == ["model-2.weights.h5"]


def test_a_state_naming_a_missing_weights_file_is_one_line(tmp_path):
    # a tester's: h5py's "unable to open file" and advice to run the same command again, which failed alike
    train(_model(), PATCHES, epochs=1, batch_size=8, checkpoint_dir=tmp_path, progress=False)
    (tmp_path / "model-1.weights.h5").unlink()
    with pytest.raises(train_module.CheckpointError) as missing:
        train(_model(), PATCHES, epochs=2, batch_size=8, checkpoint_dir=tmp_path, progress=False)
    assert str(missing.value) == (f"{tmp_path}/model-1.weights.h5: missing, the weights of the checkpoint "
                                  f"{tmp_path}/state.json (removed by hand?); move {tmp_path} aside to train anew "
                                  "(ssimlib train: --restart)")


def test_a_disk_without_room_for_a_checkpoint_stops_training_with_the_last_one_kept(tmp_path, monkeypatch):
    # a tester's: a full disk crashed h5py mid-save (a segfault); now an OSError (ENOSPC) before writing, which the
    # command line says in one line, and the same command resumes from the checkpoint kept
    import errno
    import json
    import shutil

    train(_model(), PATCHES, epochs=1, batch_size=8, checkpoint_dir=tmp_path, progress=False)
    written = (tmp_path / "model-1.weights.h5").stat().st_size
    room = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(train_module.shutil, "disk_usage", lambda path: room._replace(free=written - 1))
    with pytest.raises(OSError) as full:
        train(_model(), PATCHES, epochs=2, batch_size=8, checkpoint_dir=tmp_path, progress=False)
    assert full.value.errno == errno.ENOSPC and full.value.filename == str(tmp_path)
    assert "no room for the checkpoint of this epoch" in full.value.strerror
    assert len(json.loads((tmp_path / train_module.STATE_FILE).read_text())["history"]["loss"]) == 1
    monkeypatch.setattr(train_module.shutil, "disk_usage", lambda path: room._replace(free=2 * written))
    assert len(train(_model(), PATCHES, epochs=2, batch_size=8, checkpoint_dir=tmp_path, progress=False)["loss"]) == 2
