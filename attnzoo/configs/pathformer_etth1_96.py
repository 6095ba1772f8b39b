"""Pathformer on ETTh1, input 96, horizon 96: the official recipe (scripts/multivariate/ETTh1.sh).

    python -m attnzoo.train --config=pathformer_etth1_96 --workdir=runs/pathformer_etth1_96

30 epochs of Adam with a one-cycle schedule (peak 5e-4), L1 + balance loss, the best
checkpoint by val MAE with patience 10; `python -m attnzoo.eval` reports its test MSE/MAE.
Paper (input 96): see PAPER in benchmarks/timeseries.py.
"""

from attnzoo.configs._forecasting import pathformer_config


def get_config(arg: str | None = None):
    return pathformer_config("etth1", 96, "pathformer_etth1_96", arg)
