"""Optax optimizer and learning-rate schedule from the config.

`config.optimizer`: `name` (adamw | sgd | muon), `learning_rate` (peak), `weight_decay`,
`b1`, `b2`, `eps`, `momentum` (sgd), `clip_norm` (global-norm clipping; 0 = off).
`config.schedule`: `name` (warmup_cosine | constant), `warmup_steps`, `end_fraction`
(final lr as a fraction of the peak). Weight decay skips params of rank < 2 (biases, norms).
"""

from collections.abc import Callable

import jax
import ml_collections
import optax

OPTIMIZERS = ("adamw", "sgd", "muon")
SCHEDULES = ("warmup_cosine", "constant")


def make_schedule(schedule: ml_collections.ConfigDict, peak: float, total_steps: int) -> Callable:
    if schedule.name == "constant":
        warmup = schedule.get("warmup_steps", 0)
        return optax.linear_schedule(0.0, peak, warmup) if warmup else optax.constant_schedule(peak)
    if schedule.name == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0,
            peak_value=peak,
            warmup_steps=schedule.warmup_steps,
            decay_steps=max(total_steps, schedule.warmup_steps + 1),
            end_value=peak * schedule.get("end_fraction", 0.0),
        )
    raise ValueError(f"unknown schedule {schedule.name!r}; choose 'warmup_cosine' or 'constant'")


def _decay_mask(params) -> object:
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(
    config: ml_collections.ConfigDict, total_steps: int
) -> tuple[optax.GradientTransformation, Callable]:
    """Returns `(tx, schedule)`; `schedule(step)` is the learning rate, for logging."""
    opt = config.optimizer
    schedule = make_schedule(config.schedule, opt.learning_rate, total_steps)
    if opt.name == "adamw":
        core = optax.adamw(
            schedule,
            b1=opt.get("b1", 0.9),
            b2=opt.get("b2", 0.999),
            eps=opt.get("eps", 1e-8),
            weight_decay=opt.get("weight_decay", 0.0),
            mask=_decay_mask,
        )
    elif opt.name == "sgd":
        core = optax.chain(
            optax.add_decayed_weights(opt.get("weight_decay", 0.0), mask=_decay_mask),
            optax.sgd(schedule, momentum=opt.get("momentum", 0.9) or None, nesterov=True),
        )
    elif opt.name == "muon":
        # Muon orthogonalises updates of 2-D weights; other params use AdamW (optax default).
        core = optax.contrib.muon(
            schedule,
            beta=opt.get("momentum", 0.95),
            weight_decay=opt.get("weight_decay", 0.0),
            weight_decay_mask=_decay_mask,
            adam_b1=opt.get("b1", 0.9),
            adam_b2=opt.get("b2", 0.999),
            adam_weight_decay=opt.get("weight_decay", 0.0),
        )
    else:
        raise ValueError(f"unknown optimizer {opt.name!r}; choose 'adamw', 'sgd' or 'muon'")
    clip = opt.get("clip_norm", 0.0)
    tx = optax.chain(optax.clip_by_global_norm(clip), core) if clip else core
    return tx, schedule
