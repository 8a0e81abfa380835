"""The options of ``train``, ``detect`` and ``evaluate`` on one's own images, checked before any work is done.

Each check raises :class:`InputError` with one line naming the option and what was expected; the command line
prints it and exits with status 2.
"""

import errno
import math
import os
import tempfile
from pathlib import Path

from ssimlib.architecture import BOTTLENECK_SIDE, TABLE_I_LAYERS, encoder_layer_spec
from ssimlib.experiments.presets import LOSSES
from ssimlib.paths import nearest_existing

KINDS = ("texture", "object")


class InputError(ValueError):
    """A file, folder or option the user gave is not what was expected (one line, for the command line)."""


def check_count(option, value):
    """Raise :class:`InputError` unless ``value`` is a whole number of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{option} must be a whole number of at least 1, got {value!r}")


# No residual exceeds this: 1 - SSIM lies in [0, 2], the squared error of pixels in [0, 1] in [0, 1], ssim_l1 in
# [0, 1.84]; a threshold above it could never flag a pixel.
MAX_RESIDUAL = 2.0


def check_threshold(value, option="--threshold"):
    """Raise :class:`InputError` unless ``value`` is a finite number above 0 and at most :data:`MAX_RESIDUAL`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InputError(f"{option} must be a finite number above 0, got {value!r}")
    if value > MAX_RESIDUAL:
        raise InputError(f"{option} must be at most {MAX_RESIDUAL:g} (no residual map reaches more, so nothing "
                         f"would ever be flagged), got {value!r}")


def check_patch_option(patch_size):
    """Raise :class:`InputError` unless the autoencoder can be built for ``patch_size`` px patches."""
    check_count("--patch-size", patch_size)
    try:
        encoder_layer_spec(patch_size)
    except ValueError:
        raise InputError(f"--patch-size must be 8 * 2**k with k >= 2 (32, 64, 128, 256, ...), "
                         f"got {patch_size}") from None


def check_out_folder(folder, option="--out"):
    """Raise :class:`InputError` unless ``folder`` exists as a writable folder or can be made."""
    existing = nearest_existing(folder)
    if not existing.is_dir():
        raise InputError(f"{option}: {existing} is a file, not a folder")
    try:  # a probe, not os.access: root may "access" /proc or a read-only mount and still not write there
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as error:  # /proc answers "No such file or directory" for a folder that is there
        why = "it takes no new files" if error.errno == errno.ENOENT else error.strerror or error
        raise InputError(f"{option}: cannot write in {existing} ({why})") from None


def check_train_options(kind, loss, patch_size, latent_dim, epochs, n_patches, batch_size, validation_fraction,
                        min_defect_area, out):
    """Raise :class:`InputError` naming the first option of ``train`` that cannot work."""
    if kind not in KINDS:
        raise InputError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if loss not in LOSSES:
        raise InputError(f"--loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    check_patch_option(patch_size)
    for option, value in (("--latent-dim", latent_dim), ("--epochs", epochs), ("--n-patches", n_patches),
                          ("--batch-size", batch_size), ("--min-defect-area", min_defect_area)):
        check_count(option, value)
    if batch_size > n_patches:  # every epoch one short batch of all the patches: not what the number says
        raise InputError(f"--batch-size {batch_size} is larger than --n-patches {n_patches}: a batch is drawn from "
                         "the patches of an epoch; choose at most that many")
    if not 0 < validation_fraction < 1:
        raise InputError(f"--validation-fraction must be between 0 and 1 (both excluded: the held-out defect-free "
                         f"images set the detection threshold), got {validation_fraction}")
    check_fits_in_memory(patch_size, latent_dim, n_patches)
    check_out_folder(Path(out).parent)


def memory_bytes():
    """This machine's physical memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits_in_memory(patch_size, latent_dim, n_patches, available=None):
    """Raise :class:`InputError` naming ``--n-patches`` or ``--latent-dim`` where even a gray model's training
    patches (float32) or the bottleneck's weights with their gradients and Adam's two moments (float32, encoder and
    decoder) would take more than the machine's memory (``available`` bytes; default :func:`memory_bytes`)."""
    available = available or memory_bytes()
    if not available:
        return
    needs = {"--n-patches": (n_patches * patch_size**2 * 4,
                             f"{n_patches} patches of {patch_size}x{patch_size} px take"),
             "--latent-dim": (2 * BOTTLENECK_SIDE**2 * TABLE_I_LAYERS[-1][0] * latent_dim * 4 * 4,
                              f"a bottleneck of {latent_dim} takes, with its gradients and Adam's moments,")}
    for option, (size, what) in needs.items():
        if size > available:
            raise InputError(f"{option} {n_patches if option == '--n-patches' else latent_dim}: {what} "
                             f"{size / 2**30:,.0f} GiB as float32, more than this machine's {available / 2**30:,.0f} "
                             "GiB of memory; choose fewer")
