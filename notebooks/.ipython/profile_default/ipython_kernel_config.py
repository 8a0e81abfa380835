# Used by the nbval kernels (tests/conftest.py sets IPYTHONDIR here): output that
# libraries write straight to the process's file descriptors (TensorFlow's C++
# start-up log) stays in the terminal instead of landing in cell outputs.
c.IPKernelApp.capture_fd_output = False  # noqa: F821
# TensorFlow's start-up log, which TF_CPP_MIN_LOG_LEVEL does not stop, is not written at all: the kernel imports
# Keras and its backend once at start, with its stderr silenced (what the command line does, ssimlib.apps.cli).
c.InteractiveShellApp.exec_lines = ["import ssimlib.apps.cli as _cli; _cli.load_keras_quietly(); del _cli"]  # noqa: F821
# Nor is the kernel's own warning that it talks to papermill or nbval over local TCP without encryption, nor,
# when papermill shuts down a kernel that a failed cell left busy (seen under load), its "KeyboardInterrupt caught
# in kernel" line: a cell's error reaches the command line through papermill, not through the kernel's log.
c.IPKernelApp.log_level = "CRITICAL"  # noqa: F821
# The kernels keep no history: IPython would write history.sqlite into this folder, inside the repository (or an
# installed copy), on every papermill or nbval run.
c.HistoryManager.hist_file = ":memory:"  # noqa: F821
