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
