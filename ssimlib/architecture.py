"""The layer list of the paper's autoencoder (Table I) for any patch side, as data: no Keras, so that the command
line can check a ``--patch-size`` before Keras loads.  :mod:`ssimlib.models` builds the networks from it."""

# (filters, kernel, stride) of conv1..conv8 in Table I, for 128x128 patches.
TABLE_I_LAYERS = (
    (32, 4, 2),
    (32, 4, 2),
    (32, 3, 1),
    (64, 4, 2),
    (64, 3, 1),
    (128, 4, 2),
    (64, 3, 1),
    (32, 3, 1),
)
BOTTLENECK_SIDE = 8
LEAKY_SLOPE = 0.2
# The decoder's last layer: Table I's text leaves it open. "linear" is what every committed model has; "sigmoid"
# (outputs in (0, 1), as a public Keras re-implementation of the paper ends) is a campaign arm's.
LINEAR = "linear"
OUTPUTS = (LINEAR, "sigmoid")


def encoder_layer_spec(patch_size):
    """The (filters, kernel, stride) list of the encoder for a square patch of side ``patch_size``."""
    k = 0
    while BOTTLENECK_SIDE * 2**k < patch_size:
        k += 1
    if BOTTLENECK_SIDE * 2**k != patch_size or k < 2:
        raise ValueError(
            f"patch_size must be 8 * 2**k with k >= 2 (32, 64, 128, 256, ...), got {patch_size}"
        )
    spec = list(TABLE_I_LAYERS)
    if k > 4:
        spec = [(32, 4, 2)] * (k - 4) + spec
    for _ in range(4 - k):
        first_stride2 = next(i for i, (_, _, s) in enumerate(spec) if s == 2)
        del spec[first_stride2]
    return spec
