"""The shared training engine: one loop for every family.

`Trainer(config, workdir).train()` builds the mesh, the family, the model and optimizer
(born sharded inside `jax.jit`), then runs a jitted, donated train step built once with
`nnx.split`/`nnx.merge`, with periodic evaluation, orbax checkpoints, logging and a
NaN/Inf guard. Resume order: latest checkpoint in `workdir`, else `config.init_from`,
else scratch. With `config.train.ema_decay` > 0 the state also holds an exponential moving
average of the params (`state["ema"]`, checkpointed), which evaluation and sampling use.
"""

import contextlib
import math
import os
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.experimental import multihost_utils
from tqdm import tqdm

from attnzoo.train_loops import partitioning
from attnzoo.train_loops.checkpointing import Checkpointer, checkpoint_dir
from attnzoo.train_loops.family import get_family, step_key
from attnzoo.train_loops.metrics_writer import MetricsWriter
from attnzoo.train_loops.optimizers import make_optimizer
from attnzoo.train_loops.selection import Selection
from attnzoo.train_loops.shutdown import StopRequest, TrainingInterrupted
from attnzoo.zoo.pretrained import load_pretrained


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or Inf."""


def _to_pure(state: dict) -> dict:
    return {name: nnx.to_pure_dict(s) for name, s in state.items()}


def _from_pure(template: dict, pure: dict) -> dict:
    out = {}
    for name, s in template.items():
        s = jax.tree.map(lambda x: x, s)  # a fresh copy to fill
        nnx.replace_by_pure_dict(s, pure[name])
        out[name] = s
    return out


class Trainer:
    """Trains and evaluates the model a config describes, in `workdir`."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str):
        self.config, self.workdir = config, workdir
        self.mesh = partitioning.make_mesh(config.mesh)
        self.rules = partitioning.logical_rules(config.mesh)
        partitioning.check_batch_size(config.train.batch_size, self.mesh)
        partitioning.check_batch_size(config.train.eval_batch_size, self.mesh)
        self.family = get_family(config, workdir)
        self.ema_decay = float(config.train.get("ema_decay", 0.0))
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"train.ema_decay={self.ema_decay} must be in [0, 1)")
        self.tx, self.schedule = make_optimizer(config, config.train.steps)
        with self._context():
            model, optimizer = nnx.eval_shape(self._init_modules)
            self.model_spec = getattr(model, "model_spec", "")  # rebuilds it from a checkpoint
            self.model_def, abstract_model = nnx.split(model)
            self.opt_def, abstract_opt = nnx.split(optimizer)
            self.abstract_state = {"model": abstract_model, "opt": abstract_opt}
            if self.ema_decay:
                self.abstract_state["ema"] = nnx.state(model, nnx.Param)
            self.shardings = partitioning.state_shardings(self.abstract_state, self.mesh)
        self._train_step = jax.jit(
            self._step,
            donate_argnums=0,
            in_shardings=(self.shardings, partitioning.batch_sharding(self.mesh)),
            out_shardings=(self.shardings, None),
        )
        self._eval_step = jax.jit(self._eval, in_shardings=(self.shardings["model"], None))
        self._loss_after_update = jax.jit(
            lambda model_state, batch: self.family.loss(
                self.model(model_state), batch, jax.random.key(0)
            )[0],
            in_shardings=(self.shardings["model"], None),
        )

    # ----------------------------------------------------------------- state
    def _context(self) -> contextlib.ExitStack:
        """Mesh and logical rules in force while tracing, for sharding annotations."""
        stack = contextlib.ExitStack()
        stack.enter_context(jax.set_mesh(self.mesh))
        stack.enter_context(nnx.logical_axis_rules(self.rules))
        return stack

    def _init_modules(self):
        model = self.family.build_model(rngs=nnx.Rngs(self.config.seed))
        model.train()
        return model, nnx.Optimizer(model, self.tx, wrt=nnx.Param)

    def init_state(self) -> dict:
        """Freshly initialised `{"model", "opt"}` state, born sharded."""

        def init():
            model, optimizer = self._init_modules()
            state = {"model": nnx.state(model), "opt": nnx.state(optimizer)}
            if self.ema_decay:
                state["ema"] = jax.tree.map(jnp.copy, nnx.state(model, nnx.Param))
            return state

        with self._context():
            return jax.jit(init, out_shardings=self.shardings)()

    def inference_state(self, state: dict) -> nnx.State:
        """The model state to evaluate and sample with: `state["model"]`, its params replaced
        by their moving average when `train.ema_decay` is set."""
        return nnx.merge_state(state["model"], state["ema"]) if "ema" in state else state["model"]

    def model(self, model_state: nnx.State) -> nnx.Module:
        """The NNX model holding `model_state` (`state["model"]`), in eval mode."""
        model = nnx.merge(self.model_def, model_state)
        model.eval()
        return model

    # ------------------------------------------------------------------ steps
    def _step(self, state: dict, batch: dict):
        model = nnx.merge(self.model_def, state["model"])
        optimizer = nnx.merge(self.opt_def, state["opt"])
        rng = step_key(self.config.seed, optimizer.step[...])
        (loss, aux), grads = nnx.value_and_grad(self.family.loss, has_aux=True)(model, batch, rng)
        lr = self.schedule(optimizer.step[...])
        optimizer.update(model, grads)
        aux = self.family.post_update(model, aux)
        metrics = {"loss": loss, **aux, "grad_norm": optax.tree.norm(grads), "lr": lr}
        new_state = {"model": nnx.state(model), "opt": nnx.state(optimizer)}
        if self.ema_decay:
            new_state["ema"] = ema_update(state["ema"], nnx.state(model, nnx.Param), self.ema_decay)
        return new_state, metrics

    def _eval(self, model_state, batch: dict):
        return self.family.eval_metrics(self.model(model_state), batch)

    def train_step(self, state: dict, local_batch: dict) -> tuple[dict, dict]:
        """One optimizer step on this process's numpy batch; `state` is donated."""
        with self._context():
            return self._train_step(state, partitioning.global_batch(local_batch, self.mesh))

    # ------------------------------------------------------------------- eval
    def evaluate(self, state: dict, split: str | None = None) -> dict[str, float]:
        """Metrics over every example of `split` (default `config.data.eval_split`)."""
        split = split or self.config.data.eval_split
        pid, nproc = jax.process_index(), jax.process_count()
        local_size = self.config.train.eval_batch_size // nproc
        batches = iter(
            self.family.make_dataset(split, train=False, process_index=pid, process_count=nproc)
        )
        totals: dict[str, list[float]] = {}
        template = None
        while True:
            local = next(batches, None)
            if nproc > 1:  # all processes run the same number of eval steps
                more = multihost_utils.process_allgather(np.array(local is not None))
                if not more.any():
                    break
            elif local is None:
                break
            if template is None:  # shapes for padding batches of a process with no data left
                template = self._batch_template(local, split)
            local = _pad_batch(
                local if local is not None else template, local_size, empty=local is None
            )
            with self._context():
                sums = self._eval_step(
                    self.inference_state(state), partitioning.global_batch(local, self.mesh)
                )
            for name, (total, count) in jax.device_get(sums).items():
                acc = totals.setdefault(name, [0.0, 0.0])
                acc[0] += float(total)
                acc[1] += float(count)
        return self.family.summarize(
            {name: total / max(count, 1.0) for name, (total, count) in totals.items()}
        )

    def _batch_template(self, local: dict | None, split: str) -> dict:
        """A one-example zero batch shaped like `split`'s batches (from `local`, or, on a
        process whose shard is empty, from the split's first batch)."""
        if local is None:
            whole = self.family.make_dataset(split, train=False, process_index=0, process_count=1)
            local = next(iter(whole))
        return jax.tree.map(lambda x: np.zeros_like(x[:1]), local)

    # ------------------------------------------------------------------ train
    def sharded_abstract_state(self) -> dict:
        """`ShapeDtypeStruct`s of the state, each carrying its target sharding."""
        return jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
            self.abstract_state,
            self.shardings,
        )

    def restore(self, checkpointer: Checkpointer, step: int) -> tuple[dict, dict, int]:
        """`(state, data_state, step)` of checkpoint `step`, restored straight into shardings."""
        abstract = _to_pure(self.sharded_abstract_state())
        pure, data_state, meta = checkpointer.restore(step, abstract)
        return _from_pure(self.abstract_state, pure), data_state, int(meta["step"])

    def save(self, checkpointer: Checkpointer, step: int, state: dict, data_state: dict) -> None:
        """Checkpoints `state` and the data position at `step` (with the config)."""
        meta = {"config": self.config.to_json(), "step": step, "model": self.model_spec}
        checkpointer.save(step, _to_pure(state), data_state, meta, force=True)

    def restore_or_init(self, checkpointer: Checkpointer, data_iter) -> tuple[dict, int]:
        """State and step to start from: latest checkpoint, else `init_from`, else fresh."""
        latest = checkpointer.latest_step()
        if latest is not None:
            state, data_state, step = self.restore(checkpointer, latest)
            data_iter.set_state(data_state)
            return state, step
        state = self.init_state()
        init_from = self.config.get("init_from", None)
        if init_from and init_from.get("path"):
            model = nnx.merge(self.model_def, state["model"])
            report = load_pretrained(
                model,
                init_from.path,
                skip=tuple(init_from.get("skip", ())),
                into=init_from.get("into", ""),
            )
            state["model"] = nnx.state(model)
            if self.ema_decay:  # the average starts from the loaded params
                state["ema"] = jax.tree.map(jnp.copy, nnx.state(model, nnx.Param))
            if jax.process_index() == 0:
                print(
                    f"init_from {init_from.path}: loaded {len(report['loaded'])} params, "
                    f"resampled {report['resampled'] or 'none'}, "
                    f"fresh init for {report['kept'] + report['reset'] or 'none'}",
                    flush=True,
                )
        return state, 0

    def train(self) -> dict[str, float]:
        """Runs to `config.train.steps` (or an early stop, see `selection.py`); returns the
        final eval metrics (of the best checkpoint when `config.select` chooses one).

        SIGINT/SIGTERM stop after the current step with a checkpoint of it
        (`TrainingInterrupted`); a non-finite loss stops without saving the bad state.
        """
        cfg = self.config.train
        pid, nproc = jax.process_index(), jax.process_count()
        data_iter = iter(
            self.family.make_dataset(
                self.config.data.train_split, train=True, process_index=pid, process_count=nproc
            )
        )
        checkpointer = Checkpointer(
            self.workdir, every=cfg.checkpoint_every, keep=cfg.keep_checkpoints
        )
        writer = bar = selection = None
        stop = StopRequest()
        results = {}
        try:
            state, step = self.restore_or_init(checkpointer, data_iter)
            writer = MetricsWriter(self.workdir, start_step=step)
            selection = Selection(self, self.workdir)
            selection.resume(step)
            pending, history = None, []
            bar = tqdm(
                total=cfg.steps,
                initial=step,
                disable=None if pid == 0 else True,
                desc="train",
                mininterval=2.0,
                leave=False,
            )
            while step < cfg.steps and not selection.stopped:
                if self._stop_requested(stop, step):
                    self._save_and_stop(stop, checkpointer, step, state, data_iter, pending)
                batch = next(data_iter)
                state, metrics = self.train_step(state, batch)
                step += 1
                bar.update()
                if pending is not None:  # check the previous step while this one runs
                    self._check_finite(*pending, checkpointer)
                pending = (step, metrics)
                history.append(metrics)
                last = step == cfg.steps
                if step % cfg.log_every == 0 or last:
                    self._check_finite(*pending, checkpointer)
                    rows = jax.device_get(history)
                    writer.write(step, "train", {k: np.mean([r[k] for r in rows]) for k in rows[0]})
                    history = []
                if (cfg.eval_every and step % cfg.eval_every == 0) or last:
                    results = selection.evaluate(state, step, data_iter.get_state(), writer)
                if step % cfg.checkpoint_every == 0 or last or selection.stopped:
                    self._check_finite(*pending, checkpointer)
                    self._check_updated_state(step, state, batch, checkpointer)
                    self.save(checkpointer, step, state, data_iter.get_state())
            if not results:  # resumed a finished run: report its metrics again
                results = selection.evaluate(state, step, data_iter.get_state(), writer)
            results = selection.final(results)
        finally:
            _close_all(stop, selection, bar, checkpointer, writer)
        return results

    def _stop_requested(self, stop, step: int) -> bool:
        """Whether a signal asks to stop; processes agree (checked every `log_every`)."""
        if jax.process_count() == 1:
            return stop.signum is not None
        if step % self.config.train.log_every:
            return False
        flags = multihost_utils.process_allgather(np.array(stop.signum or 0))
        stop.signum = stop.signum or int(flags.max()) or None
        return stop.signum is not None

    def _save_and_stop(self, stop, checkpointer, step, state, data_iter, pending) -> None:
        if pending is not None:
            self._check_finite(*pending, checkpointer)
        if checkpointer.latest_step() != step:
            self.save(checkpointer, step, state, data_iter.get_state())
        checkpointer.wait()
        raise TrainingInterrupted(
            f"stopped by {stop.name} at step {step}; checkpoint in "
            f"{checkpoint_dir(self.workdir)}/{step} (run the same command to resume)",
            stop.signum,
        )

    def _check_finite(self, step: int, metrics: dict, checkpointer: Checkpointer) -> None:
        self._raise_if_nonfinite(float(jax.device_get(metrics["loss"])), step, checkpointer)

    def _check_updated_state(self, step, state, local_batch, checkpointer) -> None:
        """The loss logged for step k comes from the params *before* its update; before
        checkpointing the params after it, their loss on the same batch must be finite."""
        with self._context():
            batch = partitioning.global_batch(local_batch, self.mesh)
            loss = self._loss_after_update(state["model"], batch)
        self._raise_if_nonfinite(float(jax.device_get(loss)), step, checkpointer, after=True)

    def _raise_if_nonfinite(self, loss, step, checkpointer, *, after=False) -> None:
        if math.isfinite(loss):
            return
        checkpointer.wait()
        good = checkpointer.latest_step()
        kept = (
            f"last good checkpoint: step {good} in {checkpoint_dir(self.workdir)}"
            if good is not None
            else "no checkpoint was written"
        )
        when = f"step {step} (after its update)" if after else f"step {step}"
        raise NonFiniteLossError(f"loss became {loss} at {when}; stopped without saving ({kept})")


def ema_update(ema: nnx.State, params: nnx.State, decay: float) -> nnx.State:
    """`decay * ema + (1 - decay) * params`, leaf by leaf."""
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def _close_all(*resources) -> None:
    """Closes each resource; while an error propagates, close errors do not replace it."""
    failing = sys.exc_info()[1] is not None
    first = None
    for resource in resources:
        try:
            if resource is not None:
                resource.close()
        except Exception as e:
            first = first or e
    if first is not None and not failing:
        raise first


def _pad_batch(batch: dict, size: int, *, empty: bool = False) -> dict:
    """Pads the leading axis to `size` and adds `mask` (True on real examples)."""
    n = 0 if empty else len(next(iter(batch.values())))
    out = {
        k: np.concatenate([v, np.zeros((size - len(v),) + v.shape[1:], v.dtype)])
        if len(v) < size
        else v
        for k, v in batch.items()
    }
    out["mask"] = np.arange(size) < n
    return out


def maybe_initialize_distributed(
    coordinator: str | None, num_processes: int, process_id: int
) -> None:
    """`jax.distributed.initialize` for multi-process runs (CPU uses gloo collectives)."""
    if num_processes <= 1:
        return
    if jax.config.jax_platforms in (None, "", "cpu") or os.environ.get("JAX_PLATFORMS") == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id
    )
