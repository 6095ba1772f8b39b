"""The linear baseline on Los-loop: one Linear(12 → 12) shared by every sensor.

    python -m attnzoo.train --config=linear_losloop --workdir=runs/linear_losloop

Trained like GMAN (masked MAE, Adam 1e-3 ×0.7 every 5 epochs, batch 32, best by val MAE,
patience 10); a baseline of benchmarks/traffic.py.
"""

from attnzoo.configs._common import with_variant
from attnzoo.configs._traffic import traffic_config


def get_config(arg: str | None = None):
    c = traffic_config("los_loop", "")
    c.model.name = "traffic_linear"
    return with_variant(c, "linear_losloop", arg, smoke_model={})
