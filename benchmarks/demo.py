"""`make demo` on a fresh clone: total wall time (venv + install + training) and accuracy.

    python3 benchmarks/demo.py --out demo.json

Clones this checkout's HEAD into a temporary directory, runs `make demo` there and reads
the final test accuracy the run wrote. Target: <= 3 minutes, >= 95% test accuracy.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    clone = os.path.join(tempfile.mkdtemp(prefix="attnzoo_demo_"), "attnzoo")
    subprocess.run(["git", "clone", "-q", REPO, clone], check=True)
    start = time.time()
    done = subprocess.run(["make", "demo"], cwd=clone, capture_output=True, text=True)
    wall = time.time() - start
    if done.returncode:
        sys.exit(f"make demo failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    with open(os.path.join(clone, "runs", "vit_tiny_digits", "final_eval.json")) as f:
        results = json.load(f)
    rows = [
        ("make demo wall time (s)", wall),
        ("test accuracy", results["accuracy"]),
        ("test loss", results["loss"]),
    ]
    width = max(len(k) for k, _ in rows)
    print("\nmake demo on a fresh clone\n" + "-" * (width + 12))
    for key, value in rows:
        print(f"{key:<{width}}  {value:.4g}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(
                {
                    "title": "make demo on a fresh clone",
                    **dict(rows),
                    "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
