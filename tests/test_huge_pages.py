import os
import platform
import subprocess
import sys

import pytest

from attnzoo.huge_pages import OPT_OUT, TUNABLE

SCRIPT = (
    "import os, sys; from attnzoo.huge_pages import reexec_with_huge_pages; "
    "print('started', flush=True); reexec_with_huge_pages(); "
    "print(os.environ.get('GLIBC_TUNABLES'), sys.argv[1:])"
)
linux_glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc tunables exist on Linux with glibc only",
)


def _run(env: dict) -> list[str]:
    env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, "--flag", "x"], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


@linux_glibc
def test_reexecutes_once_with_the_tunable_and_the_same_arguments():
    lines = _run({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1", OPT_OUT: None})
    tunables = f"glibc.malloc.trim_threshold=1:{TUNABLE}"  # kept, and extended
    assert lines == ["started", "started", f"{tunables} ['--flag', 'x']"]


def test_opt_out_keeps_the_process_as_started():
    lines = _run({"GLIBC_TUNABLES": None, OPT_OUT: "1"})
    assert lines == ["started", "None ['--flag', 'x']"]


@linux_glibc
def test_the_command_line_runs_through_the_reexecution():
    env = {k: v for k, v in os.environ.items() if k not in (OPT_OUT, "GLIBC_TUNABLES")}
    out = subprocess.run(
        [sys.executable, "-m", "attnzoo.train", "--list"], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "vit_tiny_digits" in out.stdout.split()
