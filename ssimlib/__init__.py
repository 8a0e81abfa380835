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

# Read by TensorFlow when it loads, so import ssimlib before keras or tensorflow.
# oneDNN: TensorFlow leaves it off on AMD CPUs; with it, training on a 2-core CPU
# is about twice as fast.  One inter-op thread: with more, TensorFlow sums
# gradients in whatever order its threads finish, and two runs with the same
# seed end with different weights; with one, training is bit-reproducible on a
# given machine, and no slower on a small CPU.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

__version__ = "0.1.0"
