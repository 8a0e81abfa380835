"""ssimlib: structural-similarity autoencoders for unsupervised defect segmentation.

A re-implementation of Bergmann, Löwe, Fauser, Sattlegger and Steger,
"Improving Unsupervised Defect Segmentation by Applying Structural Similarity
to Autoencoders", VISAPP 2019, on Keras 3 (TensorFlow, JAX or PyTorch backend).

Three layers; every import points down (tests/test_architecture.py checks it):

* the library, here: :mod:`~ssimlib.ssim` (SSIM maps and losses), :mod:`~ssimlib.models`,
  :mod:`~ssimlib.losses`, :mod:`~ssimlib.train`, :mod:`~ssimlib.store_training`, :mod:`~ssimlib.data`,
  :mod:`~ssimlib.synthetic`, :mod:`~ssimlib.inference`, :mod:`~ssimlib.postprocess`, :mod:`~ssimlib.metrics`,
  :mod:`~ssimlib.thresholds`, :mod:`~ssimlib.evaluate`, :mod:`~ssimlib.records` (results files),
  :mod:`~ssimlib.features` (with :mod:`~ssimlib.pth_reader`), :mod:`~ssimlib.artifacts`, :mod:`~ssimlib.parity`
  (backends and devices compared), :mod:`~ssimlib.plotting`, :mod:`~ssimlib.paths`, :mod:`~ssimlib.reproducibility`;
* :mod:`ssimlib.experiments`, the paper's experiments and their campaigns: ``checkerboard`` (Fig. 3),
  ``nanotwice`` (Fig. 6), ``sensitivity`` (Table II), ``protocol`` (the crop-protocol campaign),
  ``evaluation_variants`` and ``false_positives`` (what limits the SSIM-AE), ``presets``, ``mvtec``
  with ``mvtec_runs``, ``mvtec_figures`` and ``mvtec_summary`` (MVTec AD), ``studies`` (training them all);
* :mod:`ssimlib.apps`, the applications: ``cli`` (``python -m ssimlib``), ``notebooks``, ``batch``,
  ``own_images``, ``scoring``, ``labelled``, ``own_evaluation``, ``report``.
"""

from ssimlib.reproducibility import configure

# Before Keras loads TensorFlow: oneDNN, one inter-op thread, denormals flushed
# (see ssimlib/reproducibility.py).  Import ssimlib before keras or tensorflow.
configure()

__version__ = "0.1.0"
