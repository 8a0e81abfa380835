"""Training on patches with Adam, a progress bar and resumable checkpoints.

The loop feeds NumPy batches to ``model.train_on_batch`` (fast on every backend;
on a 2-core CPU it beats ``fit`` on arrays or a default ``tf.data`` pipeline).
Each epoch visits the patches in an order drawn from ``(seed, epoch)``, so a run
that resumes from a checkpoint takes exactly the steps the uninterrupted run
would have taken.  The patches are one fixed set of crops (an array), or fresh
crops every epoch (:class:`ssimlib.data.CropStream`, drawn from ``(seed, epoch)``
too); a validation loss on patches the model never trains on can be logged
every epoch.  On TensorFlow, runs with one seed on one machine repeat
themselves bit for bit, but for a rare drift with the SSIM loss (see
:mod:`ssimlib.reproducibility`).
"""

import contextlib
import errno
import json
import os
import shutil
import socket
import time
from pathlib import Path

import keras
import numpy as np
from tqdm import tqdm

try:
    import fcntl
except ImportError:  # not POSIX (Windows): checkpoints are not locked
    fcntl = None

from ssimlib.architecture import LINEAR
from ssimlib.data import CropStream
from ssimlib.records import cpu_label
from ssimlib.losses import get_loss
from ssimlib.models import FeatureMatchingAutoencoder, VariationalAutoencoder
from ssimlib.ssim import DEFAULT_WINDOW, STANDARD

STATE_FILE = "state.json"
WEIGHTS_FILE = "model.weights.h5"  # the weights of a checkpoint saved before its state named them
LOCK_FILE = "training.lock"


class CheckpointError(RuntimeError):
    """A checkpoint folder that cannot be used (one line naming it and why)."""


class CheckpointBusyError(CheckpointError):
    """Another process is training into the same checkpoint folder (one line naming it and that process)."""


@contextlib.contextmanager
def checkpoint_lock(directory):
    """Hold the checkpoint folder ``directory`` for this process while it trains into it.

    An exclusive ``flock`` on ``directory/training.lock``, which the system releases when the
    process ends, however it ends (so a killed job leaves no stale lock).  A second process
    asking for it raises :class:`CheckpointBusyError`: two trainings into one checkpoint would
    overwrite each other's epochs.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    with open(directory / LOCK_FILE, "a+") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "a process"
            raise CheckpointBusyError(f"{directory}: {holder} is training into this checkpoint; wait for it to end, "
                                      "or stop it and run again (it resumes from the last epoch)") from None
        file.seek(0)
        file.truncate()
        file.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        file.flush()
        yield


# How the paper's "weight decay 1e-5" is read (see :func:`adam`); the first is what every model here trained with.
DECAYS = ("decoupled", "l2", "lr")
DECAY = DECAYS[0]


@keras.saving.register_keras_serializable(package="ssimlib")
class L2Adam(keras.optimizers.Adam):
    """Adam with ``l2 * w`` added to each variable's gradient (PyTorch's ``Adam(weight_decay=l2)``).

    The same as adding ``l2 / 2 * sum(w ** 2)`` to the loss, without that term in the logged loss.
    """

    def __init__(self, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.l2 = l2

    def apply(self, grads, trainable_variables=None):
        variables = self._trainable_variables if trainable_variables is None else trainable_variables
        grads = [g if g is None else keras.ops.add(g, keras.ops.multiply(keras.ops.cast(v, g.dtype), self.l2))
                 for g, v in zip(grads, variables)]
        return super().apply(grads, trainable_variables)

    def get_config(self):
        return {**super().get_config(), "l2": self.l2}


def adam(learning_rate=2e-4, weight_decay=1e-5, decay=DECAY):
    """Adam with the paper's learning rate and "weight decay", the latter read as ``decay`` says.

    ``"decoupled"``: Keras 3's ``weight_decay`` (AdamW style: each step shrinks a weight by
    ``learning_rate * weight_decay`` of itself); ``"l2"``: an L2 penalty, ``weight_decay * w`` in the
    gradient (:class:`L2Adam`); ``"lr"``: Keras 2's ``Adam(decay=...)``, a learning rate of
    ``learning_rate / (1 + weight_decay * step)`` and no weight decay (as a public Keras
    re-implementation of the paper reads it).
    """
    if decay == "decoupled":
        return keras.optimizers.Adam(learning_rate=learning_rate, weight_decay=weight_decay)
    if decay == "l2":
        return L2Adam(l2=weight_decay, learning_rate=learning_rate)
    if decay == "lr":
        schedule = keras.optimizers.schedules.InverseTimeDecay(learning_rate, decay_steps=1, decay_rate=weight_decay)
        return keras.optimizers.Adam(learning_rate=schedule)
    raise ValueError(f"decay must be one of {', '.join(DECAYS)}, got {decay!r}")


def compile_autoencoder(
    model, loss="ssim", learning_rate=2e-4, weight_decay=1e-5, window_size=11, window=DEFAULT_WINDOW, decay=DECAY,
    constants=STANDARD,
):
    """Compile ``model`` with Adam (paper: lr 2e-4, weight decay 1e-5, read as ``decay`` says: :func:`adam`)
    and the named loss (the SSIM loss with the reading ``constants`` of its constants,
    :data:`ssimlib.ssim.SSIM_CONSTANTS`).

    By default Keras' Adam applies the weight decay decoupled from the gradient (AdamW
    style), not as an L2 penalty (README, "Where we differ": both are small at 1e-5).
    """
    if loss == "vae" and not isinstance(model, VariationalAutoencoder):
        raise ValueError("loss='vae' needs a ssimlib.models.VariationalAutoencoder")
    if loss == "fm" and not isinstance(model, FeatureMatchingAutoencoder):
        raise ValueError("loss='fm' needs a ssimlib.models.FeatureMatchingAutoencoder")
    optimizer = adam(learning_rate, weight_decay, decay)
    # XLA (jit_compile) is 3-4x slower than plain TensorFlow on a small CPU.
    jit = keras.backend.backend() != "tensorflow"
    model.compile(optimizer=optimizer, loss=get_loss(loss, window_size=window_size, window=window, constants=constants),
                  jit_compile=jit)
    return model


def _write_atomically(path, write):
    tmp = path.with_name("partial-" + path.name)  # keeps the suffix Keras checks
    write(tmp)
    os.replace(tmp, path)


def _check_room(model, directory, slack=1.25):
    """:class:`OSError` (``ENOSPC``) where ``directory`` has too little room for ``model``'s checkpoint: its weights
    and optimizer variables, bytes times ``slack`` (HDF5's own records).  A full disk had crashed h5py mid-write."""
    variables = [*model.weights, *(model.optimizer.variables if model.optimizer else [])]
    needed = slack * sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables) + 2 ** 16
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise OSError(errno.ENOSPC, f"no room for the checkpoint of this epoch (about {needed / 2 ** 20:.1f} MiB "
                                    f"needed, {free / 2 ** 20:.1f} MiB free); the last one saved is kept",
                      str(directory))


def save_checkpoint(model, directory, state):
    """Weights with the optimizer's variables, and ``state`` (a JSON-able dict), into ``directory``.

    Keras stores a compiled model's optimizer variables (Adam's step count and
    moments) in its weights file, so the file alone restores training exactly.
    The weights go to a file of their own per save, ``model-<n>.weights.h5`` (``n``: epochs in the state's
    history), which the state names; the state file, replaced last, is what makes the new checkpoint the one read,
    and only then is the file before it removed: a run killed at any point leaves a weights file and the state of
    the same epoch (a reviewer's: one file replaced after the other left epoch n+1's weights beside epoch n's state,
    and the resumed run trained that epoch twice).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _check_room(model, directory)
    name = f"model-{len(state.get('history', {}).get('loss', []))}.weights.h5"
    _write_atomically(directory / name, lambda p: model.save_weights(p))
    _write_atomically(directory / STATE_FILE, lambda p: p.write_text(json.dumps({**state, "weights": name}, indent=1)))
    for old in directory.glob("model*.weights.h5"):
        if old.name != name:
            old.unlink(missing_ok=True)


def read_checkpoint_state(directory):
    """The state dict of the checkpoint in ``directory``, or None if there is none."""
    path = Path(directory) / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else None


def load_checkpoint(model, directory):
    """Restore weights and optimizer variables saved by :func:`save_checkpoint` into a compiled ``model``: from the
    weights file its state names (``model.weights.h5`` for a state of the format before); a missing one raises
    :class:`CheckpointError`."""
    model(np.zeros((1, model.patch_size, model.patch_size, model.channels), "float32"))  # build
    # Built first, the optimizer takes its saved variables (unbuilt, Keras skips them with a warning).
    model.optimizer.build(model.trainable_variables)
    state = read_checkpoint_state(directory) or {}
    weights = Path(directory) / state.get("weights", WEIGHTS_FILE)  # before "weights": model.weights.h5
    if not weights.is_file():  # a tester's: h5py's "unable to open file", and advice to run the same command again
        raise CheckpointError(f"{weights}: missing, the weights of the checkpoint {Path(directory) / STATE_FILE} "
                              f"(removed by hand?); move {directory} aside to train anew (ssimlib train: --restart)")
    model.load_weights(weights)


# settings a run records only where they are not the default (every model before them did not record them)
OPTIONAL_SETTINGS = ("crops", "decay", "output", "ssim_constants")


def training_settings(loss, epochs, batch_size, learning_rate, weight_decay, window_size, window, seed, n_patches,
                      crops="fixed", decay=DECAY, output=LINEAR, constants=STANDARD):
    """The settings :func:`train` records in a checkpoint (a resumed run must have the same, but for ``epochs``).

    ``crops`` is ``"fixed"`` (one set of patches every epoch; not recorded, as in every
    model trained before crop streams existed) or a :attr:`ssimlib.data.CropStream.label`; ``decay``
    (:func:`adam`), the network's ``output`` (its weights fit either) and the SSIM loss's ``constants``
    (``ssim_constants``) are recorded only where they are not the default.
    """
    return {
        "loss": loss,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "weight_decay": weight_decay,
        "window_size": window_size,
        "window": window,
        "seed": seed,
        "n_patches": n_patches,
        **({} if crops == "fixed" else {"crops": crops}),
        **({} if decay == DECAY else {"decay": decay}),
        **({} if output == LINEAR else {"output": output}),
        **({} if constants == STANDARD else {"ssim_constants": constants}),
    }


def record_machine(history):
    """Note in ``history["machines"]`` that the epochs from now on run on this CPU (:func:`cpu_label`).

    The list holds ``{"from_epoch", "cpu"}`` entries, one per change of machine, so
    a model trained across sessions on different machines says which epochs ran where.
    Epochs of a history from before machines were recorded count as ``"not recorded"``.
    """
    machines = history.setdefault("machines", [])
    if not machines and history["loss"]:
        machines.append({"from_epoch": 1, "cpu": "not recorded"})
    here = cpu_label()
    if not machines or machines[-1]["cpu"] != here:
        machines.append({"from_epoch": len(history["loss"]) + 1, "cpu": here})
    return history


def epoch_line(history, epochs, patches_per_epoch, recent=5):
    """One log line after the last epoch of ``history``: loss, throughput and the time the rest will take.

    Throughput and time left come from the last ``recent`` epochs this machine ran
    (``history["epoch_seconds"]``), not from the whole history, which may span other machines.
    """
    done = len(history["loss"])
    timed = history.get("epoch_seconds", [])[-recent:]
    per_epoch = sum(timed) / len(timed) if timed else history["seconds"] / max(1, done)
    return (
        f"epoch {done}/{epochs}  loss {history['loss'][-1]:.5f}  "
        f"{patches_per_epoch / per_epoch:.0f} patches/s  {(epochs - done) * per_epoch / 3600:.1f} h left"
    )


def mean_loss(model, patches, batch_size=32):
    """Mean of the compiled loss of ``model`` over ``patches`` ``(N, p, p, C)``, weighted by batch size."""
    total = 0.0
    for b in range(0, len(patches), batch_size):
        batch = np.asarray(patches[b : b + batch_size], "float32")
        total += float(model.test_on_batch(batch, batch)) * len(batch)
    return total / len(patches)


def train(
    model,
    patches,
    loss="ssim",
    epochs=200,
    batch_size=128,
    learning_rate=2e-4,
    weight_decay=1e-5,
    window_size=11,
    window=DEFAULT_WINDOW,
    seed=0,
    checkpoint_dir=None,
    progress=True,
    on_epoch=None,
    validation=None,
    decay=DECAY,
    constants=STANDARD,
):
    """Train an autoencoder to reconstruct ``patches`` ``(N, p, p, C)`` in ``[0, 1]``.

    ``patches`` is an array (the same crops every epoch) or a :class:`ssimlib.data.CropStream`
    (fresh crops every epoch).  With ``validation`` patches ``(M, p, p, C)`` the mean loss on
    them is logged after every epoch (``history["val_loss"]``).
    ``loss`` is one of :data:`ssimlib.losses.LOSS_NAMES`; ``decay`` says how ``weight_decay`` is read
    (:func:`adam`), ``constants`` how the SSIM loss's constants are read (:data:`ssimlib.ssim.SSIM_CONSTANTS`).
    With ``checkpoint_dir`` the weights, optimizer state and loss history are saved after every epoch and
    a later call with the same arguments resumes after the last saved epoch.
    ``on_epoch(model, history)``, if given, is called after every epoch (and its checkpoint).
    While it trains, the checkpoint folder is held (:func:`checkpoint_lock`): a second training
    into it raises :class:`CheckpointBusyError`.
    Returns the history: ``{"loss": [mean loss per epoch], "seconds": float (all epochs),
    "epoch_seconds": [wall seconds of each epoch since resuming], "machines": [where which
    epochs ran, see record_machine], "val_loss": [with validation]}``.
    """
    stream = patches if isinstance(patches, CropStream) else None
    if stream is None:
        patches = np.asarray(patches)
    expected = (model.patch_size, model.patch_size, model.channels)
    for name, shape in (("patches", patches.shape), ("validation", None if validation is None else validation.shape)):
        if shape is not None and (len(shape) != 4 or tuple(shape[1:]) != expected):
            raise ValueError(f"{name} must be (N, {', '.join(map(str, expected))}) for this model, got {shape}")
    settings = training_settings(
        loss, epochs, batch_size, learning_rate, weight_decay, window_size, window, seed, patches.shape[0],
        "fixed" if stream is None else stream.label, decay, model.output_activation, constants,
    )
    with contextlib.nullcontext() if checkpoint_dir is None else checkpoint_lock(checkpoint_dir):
        compile_autoencoder(model, loss, learning_rate, weight_decay, window_size, window, decay, constants)
        history = {"loss": [], "seconds": 0.0}
        if checkpoint_dir is not None:
            state = read_checkpoint_state(checkpoint_dir)
            if state is not None:
                saved = state["settings"]
                # the optional settings both ways: a default run records none, and must not continue another's
                changed = {k: (saved.get(k), settings.get(k)) for k in {*settings, *OPTIONAL_SETTINGS}
                           if k != "epochs" and saved.get(k) != settings.get(k)}
                if changed:
                    raise ValueError(
                        f"checkpoint in {checkpoint_dir} was made with other settings "
                        f"(saved, now): {changed}; give the same settings to continue it, or move {checkpoint_dir} "
                        "aside to train anew"
                    )
                load_checkpoint(model, checkpoint_dir)
                history = state["history"]
        history["epoch_seconds"] = []  # this run's own epochs: the history before may come from another machine
        if len(history["loss"]) < epochs:
            record_machine(history)
        batches = max(1, patches.shape[0] // batch_size)  # a last partial batch is dropped
        with tqdm(total=epochs, initial=len(history["loss"]), desc=f"train {loss}", unit="epoch",
                  disable=not progress) as bar:  # closed, its line ended, however the loop ends
            for epoch in range(len(history["loss"]), epochs):
                start = time.perf_counter()
                crops = patches if stream is None else stream.crops(epoch)
                order = np.random.default_rng([seed, epoch]).permutation(len(crops))
                losses = []
                for b in range(batches):
                    batch = crops[order[b * batch_size : (b + 1) * batch_size]].astype("float32")
                    losses.append(float(model.train_on_batch(batch, batch)))
                history["loss"].append(float(np.mean(losses)))
                if validation is not None:
                    history.setdefault("val_loss", []).append(mean_loss(model, validation, batch_size))
                history["epoch_seconds"].append(time.perf_counter() - start)
                history["seconds"] += history["epoch_seconds"][-1]
                if not np.isfinite(history["loss"][-1]):
                    raise FloatingPointError(f"training loss became {history['loss'][-1]} in epoch {epoch + 1}")
                if checkpoint_dir is not None:
                    save_checkpoint(model, checkpoint_dir, {"settings": settings, "history": history})
                bar.update(1)
                bar.set_postfix(loss=f"{history['loss'][-1]:.4f}")
                if on_epoch is not None:
                    on_epoch(model, history)
        return history
