"""The applications layer: what a user runs.

The ``python -m ssimlib`` command line (``cli``), the notebooks with papermill and profiles
(``notebooks``), the MVTec AD batch (``batch``), and models of one's own images: training and
detection (``own_images``, ``own_options``, ``scoring``), evaluation on images with defect masks (``labelled``,
``own_evaluation``) and the HTML report (``report``).  A module here imports from the layers below,
:mod:`ssimlib.experiments` and the library; nothing below imports from here.
"""
