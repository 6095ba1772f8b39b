"""GMAN on Los-loop with our node2vec spatial embedding of the sensor graph.

    python -m attnzoo.train --config=gman_losloop --workdir=runs/gman_losloop

GMAN's official recipe (L = 3, K = 8, d = 8, learning rate ×0.7 every 5 epochs, batch 16,
best checkpoint by val MAE, patience 10) with Muon 1e-2 and no day-of-week input (see
`_traffic.py`) on Los-loop 12 → 12 steps; node2vec (p = 2, q = 1, 64-d) on `los_adj.csv`,
computed once and cached. Figures: benchmarks/README.md (traffic).
"""

from attnzoo.configs._traffic import gman_config


def get_config(arg: str | None = None):
    return gman_config("los_loop", "node2vec", "gman_losloop", arg)
