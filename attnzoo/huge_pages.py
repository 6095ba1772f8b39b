"""Transparent huge pages for XLA's CPU buffers (Linux + glibc).

Each execution of a compiled step allocates its temporaries as one block (a few hundred MB
for a train step), which glibc maps fresh from the kernel and unmaps afterwards: the next
step faults every 4 KiB page in again (~125k page faults per step of the language model),
inside the matmuls that first touch them. With glibc's ``glibc.malloc.hugetlb=1`` tunable,
malloc asks for transparent huge pages on such blocks (where the kernel's THP mode is
``madvise`` or ``always``) and a step faults ~600 times instead: measured on the project's
2-core CPU, the language model's train step 23% faster, the ViT-tiny's a few percent
(benchmarks/README.md). Tunables are read when a process starts, so the command-line entry
points re-execute themselves once with it set.
"""

from __future__ import annotations

import os
import platform
import sys

__all__ = ["TUNABLE", "reexec_with_huge_pages"]

TUNABLE = "glibc.malloc.hugetlb=1"
OPT_OUT = "ATTNZOO_NO_HUGE_PAGES"  # set (to anything) to keep the process as started


def reexec_with_huge_pages() -> None:
    """Re-executes this process with the same interpreter and arguments (`sys.orig_argv`) and
    `GLIBC_TUNABLES` extended by :data:`TUNABLE`; returns without doing anything when the
    tunable is already set, under `ATTNZOO_NO_HUGE_PAGES`, or off Linux with glibc."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if (
        "glibc.malloc.hugetlb" in tunables
        or OPT_OUT in os.environ
        or not sys.platform.startswith("linux")
        or platform.libc_ver()[0] != "glibc"
    ):
        return
    env = {**os.environ, "GLIBC_TUNABLES": ":".join(filter(None, (tunables, TUNABLE)))}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, env)
