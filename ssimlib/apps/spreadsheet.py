"""CSV cells that a spreadsheet shows as text: a file name such as ``=1+2.png`` is not run as a formula.

A text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab, a carriage return (or an
apostrophe, so that reading back is exact) is written with a leading apostrophe (the OWASP advice against CSV
injection); numbers are written as they are.  :func:`plain_row` undoes it for a program that reads the CSV back.
A file name of bytes that are no UTF-8 is written escaped (:func:`ssimlib.apps.file_names.printable`), which
reading back does not undo.
"""

import csv

from ssimlib.apps.file_names import printable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")  # the apostrophe too, so that plain_row undoes safe_row


def safe_row(row):
    """``row`` (a dict) with its text cells that a spreadsheet would take for a formula prefixed with ``'``, and
    file names of bytes that are no UTF-8 escaped (:func:`ssimlib.apps.file_names.printable`)."""
    row = {key: printable(value) if isinstance(value, str) else value for key, value in row.items()}
    return {key: f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value
            for key, value in row.items()}


def plain_row(row):
    """A row read back from a CSV that :func:`safe_row` wrote: the apostrophe it added removed."""
    return {key: value[1:] if isinstance(value, str) and value[:1] == "'" and value[1:].startswith(FORMULA_STARTS)
            else value for key, value in row.items()}


class SafeWriter(csv.DictWriter):
    """A ``csv.DictWriter`` of ``columns`` on the open text ``file`` that writes its header at once and every row
    through :func:`safe_row` (the file opened with ``newline=""`` and ``encoding="utf-8"``)."""

    def __init__(self, file, columns):
        super().__init__(file, columns)
        self.writeheader()

    def writerow(self, row):
        return super().writerow(safe_row(row))

    def writerows(self, rows):
        return super().writerows(map(safe_row, rows))
