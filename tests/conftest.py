"""Test setup: 8 fake CPU devices, set before jax is imported anywhere."""

import atexit
import os
import shutil
import tempfile

from tests.helpers import FAST_COMPILE  # stdlib only: jax is not imported yet

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count=8 {FAST_COMPILE}"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One compilation cache for the session (and the CLIs it starts): smoke runs of configs
# that differ only in their data compile the same programs once.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="attnzoo-jax-cache-")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], True)

import jax  # noqa: E402

jax.config.update("jax_threefry_partitionable", True)
