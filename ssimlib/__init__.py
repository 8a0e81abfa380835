"""ssimlib: structural-similarity autoencoders for unsupervised defect segmentation.

A re-implementation of Bergmann, Löwe, Fauser, Sattlegger and Steger,
"Improving Unsupervised Defect Segmentation by Applying Structural Similarity
to Autoencoders", VISAPP 2019, on Keras 3 (TensorFlow, JAX or PyTorch backend).

Modules: :mod:`~ssimlib.ssim` (SSIM maps and losses), :mod:`~ssimlib.models`,
:mod:`~ssimlib.losses`, :mod:`~ssimlib.train`, :mod:`~ssimlib.data` and
:mod:`~ssimlib.synthetic`, :mod:`~ssimlib.inference`, :mod:`~ssimlib.postprocess`,
:mod:`~ssimlib.metrics`, :mod:`~ssimlib.thresholds`, :mod:`~ssimlib.evaluate`,
:mod:`~ssimlib.features`, :mod:`~ssimlib.presets`, :mod:`~ssimlib.mvtec`, :mod:`~ssimlib.batch`.
"""

import os

# TensorFlow leaves oneDNN off on AMD CPUs; with it, training on a 2-core CPU is
# about twice as fast.  Takes effect only if TensorFlow is not imported yet.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
