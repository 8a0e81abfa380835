# Used by the nbval kernels (tests/conftest.py sets IPYTHONDIR here): output that
# libraries write straight to the process's file descriptors (TensorFlow's C++
# start-up log) stays in the terminal instead of landing in cell outputs.
c.IPKernelApp.capture_fd_output = False  # noqa: F821
