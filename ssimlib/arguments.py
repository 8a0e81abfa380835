"""Types for ``argparse`` options shared by the commands (``type=`` callables)."""

import argparse


def at_least_one(text):
    """A whole number of at least 1 from the command line (``"3"`` -> 3); else argparse's one-line error, exit 2."""
    if not text.lstrip("+").isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def random_seed(text):
    """A random seed from the command line: a whole number from 0 to 2**32 - 1 (NumPy's and Keras' range)."""
    if not text.lstrip("+").isdigit() or int(text) >= 2**32:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to 2**32 - 1, got {text!r}")
    return int(text)


class OneLineParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose refusals are one line, ``error: <prog>: <message>``, exit status 2
    (argparse's own prints the whole usage first); its subcommands' parsers are of this class too."""

    def __init__(self, *args, **kwargs):
        # no abbreviated options: --o for --out, --resta for --restart went unseen by what reads argv itself (the
        # Ctrl-C line of ssimlib.apps.cli; a tester's)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"error: {self.prog}: {message} (-h lists the options)\n")
