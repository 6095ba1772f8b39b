"""DLinear on ETTh1, input 96, horizon 96: the linear baseline, trained by the zoo.

    python -m attnzoo.train --config=dlinear_etth1_96 --workdir=runs/dlinear_etth1_96

The official DLinear recipe for ETTh1 (cure-lab/LTSF-Linear scripts): MSE loss, Adam at
5e-3 halved after every epoch, batch 32, 10 epochs, the best checkpoint by val MSE with
patience 3. Input 96, as the Pathformer runs it is compared with (benchmarks/timeseries.py).
"""

from attnzoo.configs._common import with_variant
from attnzoo.configs._forecasting import forecasting_config


def get_config(arg: str | None = None):
    c = forecasting_config("etth1", 96, batch=32, epochs=10, patience=3)
    c.model.update(name="dlinear", kernel=25)
    c.train.loss = "mse"
    c.select.metric = "mse"
    c.optimizer.update(name="adamw", learning_rate=5e-3, weight_decay=0.0, clip_norm=0.0)
    c.schedule.update(name="step_decay", decay_every=c.train.eval_every, decay_rate=0.5)
    return with_variant(c, "dlinear_etth1_96", arg, smoke_model={})
