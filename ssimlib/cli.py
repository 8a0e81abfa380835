"""Command line.

``python -m ssimlib demo``                      the embedded default job (checkerboards)
``python -m ssimlib notebook NAME [--profile ci] [-o OUT] [-p KEY VALUE]``   run one notebook with papermill
``python -m ssimlib refresh-ci [NAME ...]``      re-execute the nbval reference copies in tests/notebooks
``python -m ssimlib batch --data-root ROOT ...``  notebook 04 for many MVTec AD categories (see ssimlib.batch)
``python -m ssimlib train-study nanotwice [--models SSIM-AE ...]``  train the study's models into models/ (hours)
"""

import argparse
import contextlib
import os
import sys


@contextlib.contextmanager
def _process_stderr_silenced():
    """Point file descriptor 2 at /dev/null for the block (Python exceptions still surface after it)."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def load_keras_quietly():
    """Import Keras and its backend without their start-up log.

    TensorFlow 2.21 writes two lines at import (absl's "All log messages before
    absl::InitializeLog()" and oneDNN's "custom operations are on") that
    ``TF_CPP_MIN_LOG_LEVEL`` does not stop, so the import runs with stderr silenced.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _process_stderr_silenced():
        import keras  # noqa: F401


def demo(epochs=20, n_train=1000, n_test=30, size=32, seed=0):
    """Train an SSIM autoencoder on generated checkerboards and print the pixel AUROC of its residuals."""
    import keras

    from ssimlib.inference import residual_map
    from ssimlib.metrics import pixel_auroc
    from ssimlib.models import ConvAutoencoder
    from ssimlib.postprocess import open_anomaly_map
    from ssimlib.synthetic import checkerboard_dataset
    from ssimlib.train import train

    keras.utils.set_random_seed(seed)
    train_boards, test_boards, masks, _ = checkerboard_dataset(n_train, n_test, size=size, seed=seed)
    model = ConvAutoencoder(patch_size=size, channels=1, latent_dim=32)
    # A higher learning rate than the paper's 2e-4: this demo has a couple of minutes, not hours.
    history = train(model, train_boards, loss="ssim", epochs=epochs, batch_size=16, learning_rate=1e-3, seed=seed)
    reconstructions = model.predict_on_batch(test_boards)
    maps = [open_anomaly_map(residual_map(x, y, kind="ssim")) for x, y in zip(test_boards, reconstructions)]
    auroc = pixel_auroc(maps, masks)
    print(
        f"SSIM-AE on {n_test} generated defective {size}x{size} checkerboards (trained {epochs} epochs on "
        f"{n_train} defect-free boards, {history['seconds']:.0f} s): pixel AUROC {auroc:.3f}"
    )
    return auroc


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["batch"]:
        from ssimlib.batch import main as batch_main

        return batch_main(argv[1:])
    if argv[:1] == ["train-study"]:
        load_keras_quietly()
        from ssimlib.studies import main as studies_main

        return studies_main(argv[1:])
    parser = argparse.ArgumentParser(prog="ssimlib", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p_demo = commands.add_parser("demo", help=demo.__doc__)
    p_demo.add_argument("--epochs", type=int, default=20)
    p_demo.add_argument("--seed", type=int, default=0)
    p_nb = commands.add_parser("notebook", help="run one notebook with papermill")
    p_nb.add_argument("name", help="notebook name without .ipynb, e.g. 01_checkerboard_toy")
    p_nb.add_argument("--profile", default="full", help="full (the notebook's defaults) or a folder of notebooks/params")
    p_nb.add_argument("-o", "--output", help="executed notebook (default: the notebook itself)")
    p_nb.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                      help="override a parameter; VALUE is read as YAML (2, 0.5, true, text)")
    p_ci = commands.add_parser("refresh-ci", help="re-execute the nbval reference notebooks (ci profile)")
    p_ci.add_argument("names", nargs="*")
    commands.add_parser("batch", help="run 04_mvtec_category for many MVTec AD categories (python -m ssimlib.batch --help)")
    commands.add_parser("train-study", help="train the study's models into models/ (python -m ssimlib train-study -h)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        load_keras_quietly()
        demo(epochs=args.epochs, seed=args.seed)
    elif args.command == "notebook":
        import yaml

        from ssimlib.notebooks import run_notebook

        parameters = {key: yaml.safe_load(value) for key, value in args.parameter}
        print(run_notebook(args.name, args.output, args.profile, parameters))
    elif args.command == "refresh-ci":
        from ssimlib.notebooks import refresh_ci_copies

        refresh_ci_copies(args.names or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
