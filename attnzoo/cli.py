"""Shared command-line handling for `attnzoo.train`, `attnzoo.eval` and `attnzoo.sample`."""

import argparse
import logging
import os
import sys
from collections.abc import Callable

from attnzoo.configs import ConfigError, apply_overrides, list_configs, load_config
from attnzoo.huge_pages import reexec_with_huge_pages


def parse(argv: list[str], description: str) -> tuple[argparse.Namespace, object]:
    """Parses `--config=SPEC --workdir=DIR [--config.a.b=v ...]`; returns `(args, config)`."""
    parser = argparse.ArgumentParser(description=description, allow_abbrev=False)
    parser.error = raise_config_error  # one line, exit 2, like every other bad invocation
    parser.add_argument("--config", help="config name (see --list), NAME:arg, or a .py path")
    parser.add_argument("--workdir", help="directory for checkpoints, metrics and plots")
    parser.add_argument("--list", action="store_true", help="list the shipped configs")
    parser.add_argument("--split", default=None, help="(eval) split to evaluate")
    parser.add_argument("--coordinator_address", default=None)
    parser.add_argument("--num_processes", type=int, default=1)
    parser.add_argument("--process_id", type=int, default=0)
    args, rest = parser.parse_known_args(argv)
    if args.list:
        print("\n".join(list_configs()))
        sys.exit(0)
    overrides, i = {}, 0
    while i < len(rest):
        item = rest[i]
        if not item.startswith("--config."):
            raise ConfigError(
                f"unrecognised argument {item!r} (overrides look like --config.train.steps=10)"
            )
        key, eq, value = item[len("--config.") :].partition("=")
        if not eq:
            if i + 1 >= len(rest):
                raise ConfigError(f"--config.{key} needs a value")
            value, i = rest[i + 1], i + 1
        overrides[key] = value
        i += 1
    if not args.config:
        raise ConfigError("--config is required (a name from --list, NAME:arg, or a path)")
    if not args.workdir:
        raise ConfigError("--workdir is required")
    config = load_config(args.config)
    apply_overrides(config, overrides)
    return args, config


def raise_config_error(message: str):
    raise ConfigError(message)


def check(config, workdir: str) -> None:
    """Validates `config` and that `workdir` can hold its run (`ConfigError` otherwise);
    call after `jax.distributed` is initialised, before anything is written."""
    from attnzoo.validation import check_workdir, validate

    validate(config)
    check_workdir(config, workdir)


def quiet_background_logs() -> None:
    """Silences orbax's and asyncio's logging from background threads: their failures reach
    the main thread as exceptions, which `run` prints as one line."""

    def not_orbax(record: logging.LogRecord) -> bool:
        return f"{os.sep}orbax{os.sep}" not in record.pathname

    logging.getLogger("absl").addFilter(not_orbax)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)

    # tensorstore reports late write results into orbax's event loop, closed after a failed
    # write, through sys.excepthook or sys.unraisablehook
    def closed_loop(error) -> bool:
        return isinstance(error, RuntimeError) and str(error) == "Event loop is closed"

    default_hook, default_unraisable = sys.excepthook, sys.unraisablehook
    sys.excepthook = lambda kind, error, tb: closed_loop(error) or default_hook(kind, error, tb)
    sys.unraisablehook = lambda u: closed_loop(u.exc_value) or default_unraisable(u)


def run(main: Callable[[list[str]], None]) -> None:
    """Runs `main(argv)` (in a process with transparent huge pages for XLA's buffers,
    `attnzoo.huge_pages`); expected failures print one line and exit nonzero."""
    reexec_with_huge_pages()
    from attnzoo.data import DataNotFoundError
    from attnzoo.train_loops.shutdown import TrainingInterrupted
    from attnzoo.train_loops.trainer import NonFiniteLossError

    quiet_background_logs()
    try:
        main(sys.argv[1:])
    except ConfigError as e:
        _exit(f"error: {e}", 2)
    except TrainingInterrupted as e:
        _exit(str(e), 128 + e.signum)
    except (
        DataNotFoundError,
        NonFiniteLossError,
        OSError,
        ValueError,
        NotImplementedError,  # e.g. a family without a sampler
    ) as e:
        _exit(f"error: {e}", 1)


def _exit(message: str, code: int) -> None:
    """Prints the one line and ends the process at once: the run's resources are closed by
    now, and a library thread still winding down must not print after the message."""
    print(message, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
