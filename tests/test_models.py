"""Architecture of Table I, depth adaptation, VAE and feature-matching variants, .keras round trip."""

import keras
import numpy as np
import pytest

from ssimlib.models import (
    ConvAutoencoder,
    FeatureMatchingAutoencoder,
    VariationalAutoencoder,
    encoder_layer_spec,
    forward_flops,
)
from ssimlib.train import compile_autoencoder

TABLE_I = [  # (kernel, stride, filters, output side) of conv1..conv9, from the paper
    (4, 2, 32, 64), (4, 2, 32, 32), (3, 1, 32, 32), (4, 2, 64, 16), (3, 1, 64, 16),
    (4, 2, 128, 8), (3, 1, 64, 8), (3, 1, 32, 8), (8, 1, 100, 1),
]


def _convs(model):
    return [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))]


def test_encoder_is_table_i():
    model = ConvAutoencoder(128, 1, 100)
    convs = _convs(model.encoder)
    assert len(convs) == 9
    for layer, (kernel, stride, filters, side) in zip(convs, TABLE_I):
        assert layer.kernel_size == (kernel, kernel)
        assert layer.strides == (stride, stride)
        assert layer.filters == filters
        assert layer.output.shape[1] == side
    assert convs[-1].padding == "valid"


def test_activations_leaky_except_outputs():
    model = ConvAutoencoder(128, 1, 100)
    for part in (model.encoder, model.decoder):
        layers = part.layers[1:]
        for layer, following in zip(layers, layers[1:] + [None]):
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
                is_output = following is None
                assert isinstance(following, keras.layers.LeakyReLU) != is_output, layer.name
                if not is_output:
                    assert following.negative_slope == pytest.approx(0.2)
    assert model.encoder.layers[-1].activation is keras.activations.linear


def test_a_sigmoid_output_squashes_the_linear_networks_output():
    linear, squashed = ConvAutoencoder(32, 1, 8), ConvAutoencoder(32, 1, 8, output="sigmoid")
    x = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)
    linear(x), squashed(x)
    squashed.set_weights(linear.get_weights())  # no weights of its own: the same arrays fit both
    z = np.asarray(linear(x), np.float64)
    np.testing.assert_allclose(np.asarray(squashed(x)), 1 / (1 + np.exp(-z)), rtol=1e-5)
    assert squashed.decoder.layers[-1].name == "output_sigmoid"
    assert ConvAutoencoder.from_config(squashed.get_config()).output_activation == "sigmoid"
    with pytest.raises(ValueError, match="output must be one of linear, sigmoid, got 'tanh'"):
        ConvAutoencoder(32, 1, 8, output="tanh")


def test_decoder_mirrors_encoder():
    model = ConvAutoencoder(128, 3, 100)
    deconvs = _convs(model.decoder)
    assert len(deconvs) == 9
    assert all(isinstance(layer, keras.layers.Conv2DTranspose) for layer in deconvs)
    assert [layer.filters for layer in deconvs] == [32, 64, 128, 64, 64, 32, 32, 32, 3]
    assert [layer.kernel_size[0] for layer in deconvs] == [8, 3, 3, 4, 3, 4, 3, 4, 4]


@pytest.mark.parametrize("patch_size, stride2_layers", [(32, 2), (64, 3), (128, 4), (256, 5)])
def test_depth_adapts_to_patch_size(patch_size, stride2_layers):
    spec = encoder_layer_spec(patch_size)
    assert sum(s == 2 for _, _, s in spec) == stride2_layers
    model = ConvAutoencoder(patch_size, 1, 20)
    assert model.encoder.output.shape[1:] == (1, 1, 20)
    x = np.random.default_rng(0).random((2, patch_size, patch_size, 1), dtype=np.float32)
    assert model(x).shape == x.shape


@pytest.mark.parametrize("bad", [16, 48, 100])
def test_unsupported_patch_size_is_explained(bad):
    with pytest.raises(ValueError, match="8 \\* 2\\*\\*k"):
        ConvAutoencoder(bad, 1, 10)


def test_vae_posterior_sampling_and_kl():
    vae = VariationalAutoencoder(32, 1, 8, seed=1)
    x = np.random.default_rng(0).random((4, 32, 32, 1), dtype=np.float32)
    mean, log_var = vae.encode(x)
    assert mean.shape == log_var.shape == (4, 1, 1, 8)
    np.testing.assert_allclose(np.asarray(vae(x)), np.asarray(vae.decoder(mean)), atol=1e-6)
    a, b = np.asarray(vae.sample_reconstruction(x)), np.asarray(vae.sample_reconstruction(x))
    assert np.abs(a - b).max() > 0  # a fresh sample each call
    compile_autoencoder(vae, "vae")
    loss = vae.train_on_batch(x, x)
    assert np.isfinite(loss)


def test_feature_matching_adds_the_feature_term():
    extractor = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Conv2D(2, 3)], name="toy_features")
    fm = FeatureMatchingAutoencoder(extractor, 32, 1, 8, weight=10.0)
    x = np.random.default_rng(0).random((4, 32, 32, 1), dtype=np.float32)
    compile_autoencoder(fm, "fm")
    y = fm(x)
    expected = (np.mean((x - np.asarray(y)) ** 2)
                + 10.0 * np.mean((np.asarray(extractor(x)) - np.asarray(extractor(y))) ** 2))
    assert float(fm.compute_loss(x, x, y, training=False)) == pytest.approx(expected, rel=1e-5)
    before = [np.asarray(w).copy() for w in extractor.weights]
    fm.train_on_batch(x, x)
    for w0, w1 in zip(before, extractor.weights):
        np.testing.assert_array_equal(w0, np.asarray(w1))  # frozen


def test_loss_needs_matching_model():
    with pytest.raises(ValueError, match="VariationalAutoencoder"):
        compile_autoencoder(ConvAutoencoder(32, 1, 4), "vae")
    with pytest.raises(ValueError, match="loss must be one of"):
        compile_autoencoder(ConvAutoencoder(32, 1, 4), "l3")


@pytest.mark.parametrize("kind", ["ae", "vae", "fm"])
def test_keras_file_round_trip(tmp_path, kind):
    if kind == "ae":
        model = ConvAutoencoder(32, 3, 16)
    elif kind == "vae":
        model = VariationalAutoencoder(32, 3, 16, seed=3)
    else:
        extractor = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(2, 3)])
        model = FeatureMatchingAutoencoder(extractor, 32, 3, 16)
    compile_autoencoder(model, {"ae": "ssim", "vae": "vae", "fm": "fm"}[kind])
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    model.train_on_batch(x, x)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert type(loaded) is type(model)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's graph profiler is the reference")
@pytest.mark.parametrize("patch_size, latent_dim", [(128, 500), (64, 100)])
def test_forward_flops_of_the_encoder_match_tensorflows_profiler(patch_size, latent_dim):
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer, option_builder

    encoder = ConvAutoencoder(patch_size, 1, latent_dim).encoder
    graph = tf.function(encoder).get_concrete_function(tf.TensorSpec((1, patch_size, patch_size, 1))).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    convolutions = [node.total_float_ops for node in model_analyzer.profile(graph, options=options).children
                    if node.name.endswith("/convolution")]
    assert len(convolutions) == len(encoder_layer_spec(patch_size)) + 1
    assert forward_flops(encoder) == sum(convolutions)


def test_forward_flops_count_the_transposed_decoder_like_its_mirror():
    # Each transposed convolution does the arithmetic of the convolution it mirrors
    # (the unbottleneck: a 500 x (8*8*32) matrix product), so the two halves cost the same.
    model = ConvAutoencoder(128, 1, 500)
    assert forward_flops(model.decoder) == forward_flops(model.encoder)
    assert forward_flops(model) == 2 * forward_flops(model.encoder)
    unbottleneck = model.decoder.get_layer("unbottleneck")
    assert forward_flops(keras.Sequential([keras.Input((1, 1, 500)), unbottleneck])) == 2 * 500 * 8 * 8 * 32
