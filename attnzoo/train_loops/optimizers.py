"""Optax optimizer and learning-rate schedule from the config.

`config.optimizer`: `name` (adamw | sgd | muon), `learning_rate` (peak), `weight_decay`,
`b1`, `b2`, `eps`, `momentum` (sgd: default 0.9; muon: default 0.95, its own), `clip_norm`
(global-norm clipping; 0 = off). Muon (optax's, Nesterov, Newton–Schulz with the Keller
Jordan coefficients) orthogonalises matrix params; embeddings, heads (`vocab`/`classes`
axes), norms and biases get AdamW (`b1`, `b2`; `adam_learning_rate`, default the same
schedule). 3-D attention kernels are orthogonalised per head (`muon_dimensions`);
`consistent_rms` (e.g. 0.2, Moonlight/Kimi) scales Muon updates to AdamW's RMS.
`config.schedule`: `name` (warmup_cosine | constant | one_cycle), `warmup_steps`,
`end_fraction` (final lr as a fraction of the peak); one_cycle (PyTorch's `OneCycleLR`, as
the Pathformer recipe uses it): cosine rise from peak/`div_factor` to the peak over the
first `pct_start` of the steps, then cosine decay to peak/(`div_factor`·`final_div_factor`);
step_decay: the peak times `decay_rate` every `decay_every` steps. Weight decay skips
biases (by name, whatever their rank: attention's `[heads, head_dim]` ones too) and params of
rank < 2 (norms).
"""

from collections.abc import Callable

import jax
import ml_collections
import optax
from flax import nnx

OPTIMIZERS = ("adamw", "sgd", "muon")
SCHEDULES = ("warmup_cosine", "constant", "one_cycle", "step_decay")


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
    if schedule.name == "one_cycle":
        return optax.cosine_onecycle_schedule(
            transition_steps=max(total_steps, 2),
            peak_value=peak,
            pct_start=schedule.get("pct_start", 0.3),
            div_factor=schedule.get("div_factor", 25.0),
            final_div_factor=schedule.get("final_div_factor", 1e4),
        )
    if schedule.name == "step_decay":
        return optax.exponential_decay(
            peak, schedule.decay_every, schedule.get("decay_rate", 0.5), staircase=True
        )
    raise ValueError(
        f"unknown schedule {schedule.name!r}; choose 'warmup_cosine', 'constant', "
        "'one_cycle' or 'step_decay'"
    )


def _is_bias(path) -> bool:
    return bool(path) and getattr(path[-1], "key", None) == "bias"


def _decay_mask(params) -> object:
    """True for the params weight decay applies to: rank >= 2 and not a bias."""
    return jax.tree_util.tree_map_with_path(
        lambda path, p: p.ndim >= 2 and not _is_bias(path), params
    )


# Logical axes of params that Muon leaves to AdamW: token embeddings and output heads.
ADAM_AXES = ("vocab", "classes")


def muon_dimensions(params):
    """Per param, how Muon reshapes it into matrices (`MuonDimensionNumbers`), or None for
    AdamW. From the logical axis names of `nnx.Param`s: `[embed, heads, kv]` and
    `[heads, kv, embed]` kernels become one `[in, out]` matrix per head (the heads axis
    is a batch axis); other 2-D params are one matrix; biases (any rank), rank < 2,
    embeddings, heads and other ranks go to AdamW. Plain arrays: 2-D ones are matrices."""

    def spec(path, param):
        value = param.get_value() if isinstance(param, nnx.Variable) else param
        names = (
            param.get_metadata().get("out_sharding") if isinstance(param, nnx.Variable) else None
        )
        names = tuple(names) if names else (None,) * value.ndim
        if value.ndim < 2 or _is_bias(path) or any(a in ADAM_AXES for a in names):
            return None
        if value.ndim == 2:
            return optax.contrib.MuonDimensionNumbers(0, 1)
        if value.ndim == 3 and "heads" in names:
            reduction, output = (i for i in range(3) if names[i] != "heads")
            return optax.contrib.MuonDimensionNumbers(reduction, output)
        return None

    return jax.tree_util.tree_map_with_path(
        spec, params, is_leaf=lambda x: isinstance(x, nnx.Variable)
    )


def _pure(params):
    """`params` with every `nnx.Variable` replaced by its value."""
    return nnx.as_pure(params)


def _muon(config, schedule, total_steps) -> optax.GradientTransformation:
    """optax's Muon whose per-param matrix layout (`muon_dimensions`) is read once, at
    `init`, from the logical axis names of the `nnx.Param`s (the updates see plain arrays)."""
    opt = config.optimizer
    layout = {}
    adam_lr = opt.get("adam_learning_rate", 0.0)
    inner = optax.contrib.muon(
        schedule,
        beta=opt.get("momentum", 0.95),
        weight_decay=opt.get("weight_decay", 0.0),
        weight_decay_mask=_decay_mask,
        adam_b1=opt.get("b1", 0.9),
        adam_b2=opt.get("b2", 0.999),
        adam_weight_decay=opt.get("weight_decay", 0.0),
        adam_learning_rate=(
            make_schedule(config.schedule, adam_lr, total_steps) if adam_lr else None
        ),
        muon_weight_dimension_numbers=lambda params: layout["dims"],
        consistent_rms=opt.get("consistent_rms", None),
    )

    def init(params):
        layout["dims"] = _pure(muon_dimensions(params))
        return inner.init(_pure(params))

    return optax.GradientTransformation(init, inner.update)


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
        core = _muon(config, schedule, total_steps)
    else:
        raise ValueError(f"unknown optimizer {opt.name!r}; choose 'adamw', 'sgd' or 'muon'")
    clip = opt.get("clip_norm", 0.0)
    tx = optax.chain(optax.clip_by_global_norm(clip), core) if clip else core
    return tx, schedule
