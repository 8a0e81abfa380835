"""The paper's convolutional autoencoder (Table I), its VAE and feature-matching variants.

Architecture for 128x128 patches (Bergmann et al. 2019, Table I); every
layer but the two outputs is followed by LeakyReLU(0.2):

======  ======  ======  ======  ==========
layer   kernel  stride  filters output
======  ======  ======  ======  ==========
conv1   4x4     2       32      64x64
conv2   4x4     2       32      32x32
conv3   3x3     1       32      32x32
conv4   4x4     2       64      16x16
conv5   3x3     1       64      16x16
conv6   4x4     2       128     8x8
conv7   3x3     1       64      8x8
conv8   3x3     1       32      8x8
conv9   8x8     1 (valid) d     1x1  (linear: the latent code)
======  ======  ======  ======  ==========

The decoder mirrors it with transposed convolutions, ending in a layer with the
input's channel count: linear, or with ``output="sigmoid"`` squashed into (0, 1)
(:data:`ssimlib.architecture.OUTPUTS`; the paper does not say).

Other patch sizes (Table II uses 32 and 64; MVTec AD objects use 256): the
bottleneck convolution always sees an 8x8 map, so a patch of side ``8 * 2**k``
needs ``k`` stride-2 layers instead of Table I's four.  For ``k > 4`` extra
4x4/stride-2/32-filter layers are put in front of conv1; for ``k < 4`` the
first ``4 - k`` stride-2 layers are removed (64: conv1; 32: conv1 and conv2).
Everything else stays as in the table.  Supported sides: 32, 64, 128, 256, 512...
"""

import keras
from keras import layers, ops

from ssimlib.architecture import BOTTLENECK_SIDE, LEAKY_SLOPE, LINEAR, OUTPUTS, encoder_layer_spec


def build_encoder(patch_size=128, channels=1, latent_dim=100, name="encoder"):
    """Encoder ``(N, p, p, channels) -> (N, 1, 1, latent_dim)``, linear output."""
    inputs = keras.Input((patch_size, patch_size, channels))
    x = inputs
    for i, (filters, kernel, stride) in enumerate(encoder_layer_spec(patch_size), start=1):
        x = layers.Conv2D(filters, kernel, strides=stride, padding="same", name=f"conv{i}")(x)
        x = layers.LeakyReLU(LEAKY_SLOPE, name=f"conv{i}_lrelu")(x)
    x = layers.Conv2D(latent_dim, BOTTLENECK_SIDE, padding="valid", name="bottleneck")(x)
    return keras.Model(inputs, x, name=name)


def build_decoder(patch_size=128, channels=1, latent_dim=100, name="decoder", output=LINEAR):
    """Decoder ``(N, 1, 1, latent_dim) -> (N, p, p, channels)``, mirror of the encoder, its output ``"linear"`` or
    ``"sigmoid"``."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    spec = encoder_layer_spec(patch_size)
    inputs = keras.Input((1, 1, latent_dim))
    x = layers.Conv2DTranspose(spec[-1][0], BOTTLENECK_SIDE, padding="valid", name="unbottleneck")(inputs)
    x = layers.LeakyReLU(LEAKY_SLOPE, name="unbottleneck_lrelu")(x)
    # Layer i of the encoder maps filters[i-1] -> filters[i]; its mirror maps back.
    in_filters = [channels] + [f for f, _, _ in spec[:-1]]
    for i in range(len(spec) - 1, -1, -1):
        _, kernel, stride = spec[i]
        last = i == 0
        x = layers.Conv2DTranspose(
            in_filters[i], kernel, strides=stride, padding="same", name=f"deconv{i + 1}"
        )(x)
        if not last:
            x = layers.LeakyReLU(LEAKY_SLOPE, name=f"deconv{i + 1}_lrelu")(x)
    if output == "sigmoid":
        x = layers.Activation("sigmoid", name="output_sigmoid")(x)
    return keras.Model(inputs, x, name=name)


def leaf_layers(layer):
    """The layers of ``layer`` that hold no other layers, nested models opened, in order."""
    children = getattr(layer, "layers", None)
    if not children:
        return [layer]
    return [leaf for child in children for leaf in leaf_layers(child)]


def forward_flops(model):
    """Floating-point operations of one sample's forward pass (a multiply-add counts 2).

    Counts the ``Conv2D``, ``Conv2DTranspose`` and ``Dense`` layers of ``model``
    (nested models included) from their built shapes; biases and activations,
    a fraction of a percent here, are left out.  A transposed convolution costs
    what its input pixels scatter: ``2 * H_in * W_in * C_in * k_h * k_w * C_out``.
    For training, the usual estimate is 3x this (forward, and the two gradients).
    """
    total = 0
    for layer in leaf_layers(model):
        if isinstance(layer, layers.Conv2DTranspose):
            _, h, w, c_in = layer.input.shape
            k_h, k_w = layer.kernel_size
            total += 2 * h * w * c_in * k_h * k_w * layer.filters
        elif isinstance(layer, layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            k_h, k_w = layer.kernel_size
            total += 2 * h * w * c_out * k_h * k_w * layer.input.shape[-1]
        elif isinstance(layer, layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return total


@keras.saving.register_keras_serializable(package="ssimlib")
class ConvAutoencoder(keras.Model):
    """The paper's autoencoder: ``(N, p, p, C) -> (N, p, p, C)`` through a ``latent_dim`` code.

    ``.encoder`` and ``.decoder`` are Keras models of their own; ``output`` is the decoder's last activation
    (:func:`build_decoder`).
    """

    def __init__(self, patch_size=128, channels=1, latent_dim=100, output=LINEAR, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = int(patch_size)
        self.channels = int(channels)
        self.latent_dim = int(latent_dim)
        self.output_activation = output
        self.encoder = build_encoder(patch_size, channels, self._code_channels())
        self.decoder = build_decoder(patch_size, channels, latent_dim, output=output)

    def _code_channels(self):
        return self.latent_dim

    def call(self, x, training=False):
        return self.decoder(self.encoder(x, training=training), training=training)

    def get_config(self):
        return {
            "name": self.name,
            "patch_size": self.patch_size,
            "channels": self.channels,
            "latent_dim": self.latent_dim,
            "output": self.output_activation,
        }


@keras.saving.register_keras_serializable(package="ssimlib")
class VariationalAutoencoder(ConvAutoencoder):
    """VAE on the same trunk: the bottleneck outputs mean and log-variance of ``Q(z|x)``.

    Training adds the KL divergence to ``N(0, I)`` as a model loss, divided by
    the number of pixel values so that, with a per-pixel mean squared error as the
    compiled loss, the total is the negative ELBO per pixel for a Gaussian decoder
    of variance 1/2.  ``call`` in inference returns the decoding of the posterior
    mean; :meth:`sample_reconstruction` decodes one sample ``z ~ Q(z|x)``.
    """

    def __init__(self, patch_size=128, channels=1, latent_dim=100, seed=None, **kwargs):
        super().__init__(patch_size, channels, latent_dim, **kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _code_channels(self):
        return 2 * self.latent_dim

    def encode(self, x, training=False):
        """Posterior mean and log-variance, each ``(N, 1, 1, latent_dim)``."""
        h = self.encoder(x, training=training)
        mean, log_var = h[..., : self.latent_dim], h[..., self.latent_dim :]
        return mean, ops.clip(log_var, -10.0, 10.0)

    def _sample(self, mean, log_var):
        noise = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        return mean + ops.exp(0.5 * log_var) * noise

    def call(self, x, training=False):
        mean, log_var = self.encode(x, training=training)
        if not training:
            return self.decoder(mean, training=False)
        kl = -0.5 * ops.sum(1.0 + log_var - ops.square(mean) - ops.exp(log_var), axis=(1, 2, 3))
        pixels = self.patch_size * self.patch_size * self.channels
        self.add_loss(ops.mean(kl) / pixels)
        return self.decoder(self._sample(mean, log_var), training=True)

    def sample_reconstruction(self, x):
        """Decode one sample of ``Q(z|x)`` per patch: ``(N, p, p, C)``."""
        mean, log_var = self.encode(x)
        return self.decoder(self._sample(mean, log_var))

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="ssimlib")
class FeatureMatchingAutoencoder(ConvAutoencoder):
    """Autoencoder trained with ``L2 + weight * mean((F(x) - F(x_hat))**2)``.

    ``feature_extractor`` is a frozen Keras model taking ``(N, p, p, C)`` images in
    ``[0, 1]`` (see :mod:`ssimlib.features`); it is saved with the model.
    Compile it with the ``"l2"`` loss: the feature term is added here.
    """

    def __init__(self, feature_extractor, patch_size=128, channels=1, latent_dim=100, weight=1.0, **kwargs):
        super().__init__(patch_size, channels, latent_dim, **kwargs)
        if isinstance(feature_extractor, dict):
            feature_extractor = keras.saving.deserialize_keras_object(feature_extractor)
        feature_extractor.trainable = False
        self.feature_extractor = feature_extractor
        self.weight = float(weight)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x, y, y_pred, sample_weight, training=training)
        difference = self.feature_extractor(x) - self.feature_extractor(y_pred)
        return loss + self.weight * ops.mean(ops.square(difference))

    def get_config(self):
        return {
            **super().get_config(),
            "weight": self.weight,
            "feature_extractor": keras.saving.serialize_keras_object(self.feature_extractor),
        }
