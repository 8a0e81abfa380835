"""Process settings that make TensorFlow training on a CPU repeat itself for a given seed.

:func:`configure` runs when ``ssimlib`` is imported, and must run before TensorFlow
is loaded and starts its threads (import ``ssimlib`` before ``keras``):

* oneDNN on (TensorFlow leaves it off on AMD CPUs; with it training on a 2-core CPU
  is about twice as fast);
* one inter-op thread: with more, TensorFlow sums gradients in whatever order its
  threads finish and two runs differ from the first step; with one, a small CPU
  trains no slower;
* denormal floats flushed to zero on this thread, and so on every thread started
  after it: the SSIM loss makes some gradients (and Adam's squared-gradient averages)
  denormal, and an op gives different bits on a thread that flushes them than on one
  that does not.  It changes nothing above 1.2e-38 (float32) or 2.2e-308 (float64).
  x86-64 Linux with glibc only; elsewhere it does nothing.

With these, runs with one seed on one machine match bit for bit in the tests, but
a rare divergence remains with the SSIM loss after a hundred or more steps (source
inside TensorFlow not found; see README "CI and nbval").

``python -m ssimlib demo`` (seed 0, 1,250 Adam steps at learning rate 1e-3 with the
SSIM loss) shows it: its generated boards, its initial weights and the losses of its
first 60 steps are the same in every process, bit for bit, yet three runs printed pixel
AUROCs of 0.799, 0.789 and 0.805 (earlier 0.790, 0.809, 0.809).  One intra-op thread
(``TF_NUM_INTRAOP_THREADS=1``) does not cure it (0.80447 and 0.80357 in two runs, and
twice as slow), so it is not the order in which threads sum; the demo therefore keeps
the defaults, its README line says its AUROC varies by up to 0.02, and the test checks
that a short demo (``--epochs 2 --n-train 200``) repeats exactly.
"""

import ctypes
import os
import platform

# glibc's x86-64 math library (a fixed soname) and its fenv_t: the x87 environment
# (28 bytes), then the SSE control register MXCSR.
_LIBM = "libm.so.6"
_FENV_SIZE, _MXCSR_OFFSET = 32, 28
_MXCSR_FLUSH_TO_ZERO_AND_DENORMALS_ARE_ZERO = 0x8040


def flush_denormals():
    """Set the flush-to-zero and denormals-are-zero flags of the calling thread; True if set."""
    if platform.machine() not in ("x86_64", "AMD64") or platform.libc_ver()[0] != "glibc":
        return False
    libm = ctypes.CDLL(_LIBM)
    env = (ctypes.c_uint8 * _FENV_SIZE)()
    if libm.fegetenv(env) != 0:
        return False
    mxcsr = int.from_bytes(bytes(env[_MXCSR_OFFSET:]), "little") | _MXCSR_FLUSH_TO_ZERO_AND_DENORMALS_ARE_ZERO
    env[_MXCSR_OFFSET:] = list(mxcsr.to_bytes(4, "little"))
    return libm.fesetenv(env) == 0


def configure():
    """Apply the settings above (environment variables only where the user set none)."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    flush_denormals()
