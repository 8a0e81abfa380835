"""Training losses by name: ``l2``, ``ssim``, ``ms_ssim``, ``ssim_l1``, ``vae``, ``fm``.

Each is a serializable ``keras.losses.Loss`` comparing a batch of patches
``(N, p, p, C)`` in ``[0, 1]`` with its reconstruction.  ``vae`` and ``fm`` are the
per-pixel L2 loss: the VAE's KL term and the feature-matching term are added by
:class:`~ssimlib.models.VariationalAutoencoder` and
:class:`~ssimlib.models.FeatureMatchingAutoencoder` themselves.
"""

import keras
from keras import ops

from ssimlib.ssim import DEFAULT_WINDOW, STANDARD, constants_k, ms_ssim_loss, ssim_loss

LOSS_NAMES = ("l2", "ssim", "ms_ssim", "ssim_l1", "vae", "fm")


@keras.saving.register_keras_serializable(package="ssimlib")
class SSIMLoss(keras.losses.Loss):
    """``1 - mean SSIM`` over each patch (paper eq. 8 with the mean over the patch).

    ``window`` is the SSIM window's kind, ``"uniform"`` or ``"gaussian"``, and ``constants`` the reading of its
    constants, ``"standard"`` or ``"literal"`` (see :mod:`ssimlib.ssim`).
    """

    def __init__(self, window_size=11, window=DEFAULT_WINDOW, sigma=1.5, name="ssim", constants=STANDARD, **kwargs):
        super().__init__(name=name, **kwargs)
        self.window_size = window_size
        self.window = window
        self.sigma = sigma
        self.constants = constants
        self._k = constants_k(constants)  # a misspelt reading fails here, not at the first batch

    def _window_args(self):
        return {"window_size": self.window_size, "window": self.window, "sigma": self.sigma}

    def call(self, y_true, y_pred):
        return ssim_loss(y_true, y_pred, **self._window_args(), **self._k)

    def get_config(self):
        return {**super().get_config(), **self._window_args(), "constants": self.constants}


@keras.saving.register_keras_serializable(package="ssimlib")
class MSSSIMLoss(SSIMLoss):
    """``1 - MS-SSIM`` of each patch."""

    def __init__(self, window_size=11, window=DEFAULT_WINDOW, sigma=1.5, name="ms_ssim", **kwargs):
        super().__init__(window_size, window, sigma, name=name, **kwargs)

    def call(self, y_true, y_pred):
        return ms_ssim_loss(y_true, y_pred, **self._window_args(), **self._k)


@keras.saving.register_keras_serializable(package="ssimlib")
class SSIML1Loss(SSIMLoss):
    """``alpha * (1 - SSIM) + (1 - alpha) * L1``, alpha = 0.84 (Zhao et al., IEEE TCI 2017)."""

    def __init__(self, window_size=11, window=DEFAULT_WINDOW, sigma=1.5, alpha=0.84, name="ssim_l1", **kwargs):
        super().__init__(window_size, window, sigma, name=name, **kwargs)
        self.alpha = alpha

    def call(self, y_true, y_pred):
        l1 = ops.mean(ops.abs(y_true - y_pred), axis=(1, 2, 3))
        return self.alpha * super().call(y_true, y_pred) + (1.0 - self.alpha) * l1

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


def get_loss(name, window_size=11, window=DEFAULT_WINDOW, sigma=1.5, constants=STANDARD):
    """The training loss called ``name`` (one of :data:`LOSS_NAMES`); the window arguments and ``constants``
    (:data:`ssimlib.ssim.SSIM_CONSTANTS`) apply to SSIM losses; other constants for another loss are refused."""
    if name in ("l2", "vae", "fm"):
        if constants != STANDARD:
            raise ValueError(f"SSIM constants {constants!r} given for the {name} loss, which has none")
        return keras.losses.MeanSquaredError(name=name)
    if name == "ssim":
        return SSIMLoss(window_size, window, sigma, constants=constants)
    if name == "ms_ssim":
        return MSSSIMLoss(window_size, window, sigma, constants=constants)
    if name == "ssim_l1":
        return SSIML1Loss(window_size, window, sigma, constants=constants)
    raise ValueError(f"loss must be one of {', '.join(LOSS_NAMES)}; got {name!r}")
