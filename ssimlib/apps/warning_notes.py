"""Warnings shown as they come and kept as notes: for ``metrics.json``, or a detection's CSV row."""

import contextlib
import warnings


@contextlib.contextmanager
def noted(notes):
    """Warnings shown as before, and each one shown appended to ``notes`` (a list) once, as one line (a mask that
    looks inverted, say, is used but its warning kept beside the metrics it went into; what the warnings filter
    hides, ``-W ignore`` say, is neither shown nor kept)."""
    show = warnings.showwarning

    def note(message, *args, **kwargs):
        line = " ".join(str(message).split())
        if line not in notes:
            notes.append(line)
        show(message, *args, **kwargs)

    warnings.showwarning = note
    try:
        yield
    finally:
        warnings.showwarning = show
