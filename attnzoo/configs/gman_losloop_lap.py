"""GMAN on Los-loop with Laplacian-eigenvector spatial embeddings (the cheap option).

    python -m attnzoo.train --config=gman_losloop_lap --workdir=runs/gman_losloop_lap

As `gman_losloop`, with the 64 first non-trivial eigenvectors of the normalised Laplacian
of `los_adj.csv` instead of node2vec. Figures: benchmarks/README.md (traffic).
"""

from attnzoo.configs._traffic import gman_config


def get_config(arg: str | None = None):
    return gman_config("los_loop", "laplacian", "gman_losloop_lap", arg)
