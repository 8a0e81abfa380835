"""Results records: JSON written atomically, campaign files of one entry per run, and the machine that made them.

Keras-free at import (:func:`run_environment` imports the backend when called), so that a command that only
reads or plans results starts in seconds, not half a minute.
"""

import json
import math
import os
import re
from pathlib import Path

import numpy as np


def jsonable(value):
    """``value`` as JSON holds it: tuples as lists, keys as strings, NumPy scalars as Python's, NaN/inf as None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path, data):
    """Write ``data`` as JSON to ``path`` atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(jsonable(data), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_campaign(path, list_key, empty, kind):
    """A campaign's results file as a dict, ``empty`` where there is none.

    A file that is not JSON, or has no ``list_key`` list (one entry per finished
    run), raises a ValueError that names it and says it is not a ``kind`` file.
    """
    path = Path(path)
    if not path.exists():
        return empty
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); restore it from git or delete it") from error
    if not isinstance(results, dict) or not isinstance(results.get(list_key), list):
        raise ValueError(f"{path} has no '{list_key}' list: it is not a {kind} file")
    return results


def add_to_campaign(path, results, list_key, entry, key, **fields):
    """Put ``entry`` into ``results[list_key]`` in place of the one with the same ``key(entry)``, sorted by
    ``key``; set ``fields``; write the file atomically.  Returns ``results``."""
    results[list_key] = sorted([r for r in results[list_key] if key(r) != key(entry)] + [entry], key=key)
    results.update(fields)
    write_json(path, results)
    return results


def cpu_model():
    """The CPU's model name (Linux ``/proc/cpuinfo``), else what :mod:`platform` knows."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# Vector-instruction flags that decide how fast this code runs on a CPU (``/proc/cpuinfo`` names).
VECTOR_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def cpu_flags():
    """The flags of :data:`VECTOR_FLAGS` that ``/proc/cpuinfo`` lists (Linux; else empty)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    return [flag for flag in VECTOR_FLAGS if flag in flags]


def cpu_label():
    """The CPU in a few words, e.g. ``"AMD EPYC (AVX-512, 2 cores)"``: model, widest vector extension, cores.

    Machines that share a model name can differ in their vector units (and run
    this code 2-4x apart), hence the extension.
    """
    name = re.sub(r"\((R|TM)\)", "", cpu_model())
    name = re.sub(r"\s+(CPU|Processor)\b.*$", "", name).strip()
    flags = set(cpu_flags())
    isa = next((label for flag, label in (("amx_tile", "AMX"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))
                if flag in flags), None)
    return f"{name} ({', '.join(filter(None, (isa, f'{os.cpu_count()} cores')))})"


def run_environment():
    """Backend, device, CPU and library versions, for the record in a results file."""
    import importlib
    import platform

    import keras

    backend = keras.backend.backend()
    device = platform.processor() or platform.machine()
    if backend == "jax":
        import jax

        device = str(jax.devices()[0])
    elif backend == "torch":
        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        device = gpus[0].name if gpus else "cpu"
    return {
        "backend": backend,
        "device": device,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "keras": keras.__version__,
        backend: importlib.import_module(backend).__version__,
        "python": platform.python_version(),
    }
