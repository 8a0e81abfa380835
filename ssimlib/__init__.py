"""ssimlib: structural-similarity autoencoders for unsupervised defect segmentation.

A re-implementation of Bergmann, Löwe, Fauser, Sattlegger and Steger,
"Improving Unsupervised Defect Segmentation by Applying Structural Similarity
to Autoencoders", VISAPP 2019, on Keras 3 (TensorFlow, JAX or PyTorch backend).

Modules: :mod:`~ssimlib.ssim` (SSIM maps and losses), :mod:`~ssimlib.models`,
:mod:`~ssimlib.losses`, :mod:`~ssimlib.train`, :mod:`~ssimlib.data` and
:mod:`~ssimlib.synthetic`, :mod:`~ssimlib.inference`, :mod:`~ssimlib.postprocess`,
:mod:`~ssimlib.metrics`, :mod:`~ssimlib.thresholds`, :mod:`~ssimlib.evaluate`,
:mod:`~ssimlib.features` (with :mod:`~ssimlib.pth_reader`), :mod:`~ssimlib.presets`,
:mod:`~ssimlib.mvtec` with :mod:`~ssimlib.mvtec_figures` and :mod:`~ssimlib.mvtec_summary`, :mod:`~ssimlib.batch`,
:mod:`~ssimlib.checkerboard` (the Fig. 3 experiment), :mod:`~ssimlib.store_training`,
:mod:`~ssimlib.protocol` (the crop-protocol campaign), :mod:`~ssimlib.parity` (backends and devices compared).
"""

from ssimlib.reproducibility import configure

# Before Keras loads TensorFlow: oneDNN, one inter-op thread, denormals flushed
# (see ssimlib/reproducibility.py).  Import ssimlib before keras or tensorflow.
configure()

__version__ = "0.1.0"
