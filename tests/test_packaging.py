"""The TensorFlow-free install (requirements-jax.txt) stays pyproject.toml's dependencies without TensorFlow."""

import os
import subprocess
import sys

import pytest

from ssimlib.paths import REPO_ROOT

# Every module of the package imported under JAX, then the backends that got loaded.
IMPORT_EVERYTHING = """
import importlib, pkgutil, sys
import ssimlib
for module in pkgutil.walk_packages(ssimlib.__path__, "ssimlib."):
    if not module.name.endswith(".__main__"):
        importlib.import_module(module.name)
from ssimlib.records import run_environment
run_environment()
print(sorted({name.split(".")[0] for name in sys.modules} & {"tensorflow", "torch"}))
"""


def requirement_lines(text):
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_jax_requirements_are_the_base_dependencies_without_tensorflow_plus_jax():
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11 reads pyproject.toml")
    base = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    jax_set = requirement_lines((REPO_ROOT / "requirements-jax.txt").read_text())
    without_tf = [r for r in base if not r.startswith("tensorflow")]
    assert len(without_tf) == len(base) - 2  # tensorflow-cpu (Linux x86-64) and tensorflow (elsewhere)
    assert sorted(jax_set) == sorted(without_tf + ["jax[cpu]>=0.4.26"])


def test_the_conda_environment_installs_what_ci_tests_with_pip():
    # an auditor's: conda's tensorflow beside the pip install's tensorflow-cpu (two copies), and no JAX, so conda
    # users ran other tests than CI's `pip install -e ".[dev]"`
    import yaml

    tomllib = pytest.importorskip("tomllib", reason="Python 3.11 reads pyproject.toml")
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    environment = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    conda = [d for d in environment["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert "dev" in extras and pip == ["-e .[dev]"]
    assert [d.split("=")[0] for d in conda] == ["python", "pip"]


def test_the_package_loads_no_tensorflow_under_jax():
    pytest.importorskip("jax", reason="JAX is not installed")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
