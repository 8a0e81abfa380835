"""The experiments layer: the paper's experiments and the campaigns that train and measure them.

The checkerboard toy (Fig. 3), NanoTWICE (Fig. 6), the Table II sensitivity campaign, the
crop-protocol campaign, MVTec AD (presets, one category, figures, summary) and ``studies``, which
trains their models into the model store.  A module here imports only from the library below
(``ssimlib``'s top-level modules) and from other experiments, never from :mod:`ssimlib.apps`.
"""
