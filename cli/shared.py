"""What the `musicvae` command groups share: one-line errors, the --seed option, and the
options, run folder checks and training loop of `musicvae train` and `musicvae image train`.

Heavy imports happen inside the functions, so that `musicvae --help` stays instant.
"""

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from musicvae_py.configs import Config
    from musicvae_py.training.trainer import Trainer, TrainOptions


class Context:
    debug: bool = False


def run_safely(fn):
    """Turn the toolkit's errors into one line and exit status 1 (a traceback with --debug)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from musicvae_py.errors import MusicVAEError

        try:
            return fn(*args, **kwargs)
        except MusicVAEError as err:
            if Context.debug:
                raise
            click.echo(f"error: {_first_line(err)}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as err:
            if Context.debug:
                raise
            message = f"{type(err).__name__}: {_first_line(err)}"
            click.echo(f"error: {message} (rerun with --debug)", err=True)
            sys.exit(1)

    return wrapper


def _first_line(err: BaseException) -> str:
    """An error's message as one line (native libraries' messages may span several)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else ""


def seed_option(fn):
    return click.option("--seed", type=int, default=None, help="Seed for repeatable output.")(fn)


def train_options(data_help: str, run_holds: str, *own_options: Callable) -> Callable:
    """The options of both train commands; a command's `own_options` (click.option decorators
    for its length, evaluation and checkpoint settings) stand before --threads and --force."""
    first = [
        click.option(
            "--config", "config_name", default=None, help="Named config (`musicvae configs`)."
        ),
        click.option(
            "--data", "data_dir", required=True, type=click.Path(path_type=Path), help=data_help
        ),
        click.option(
            "--out",
            "run_dir",
            required=True,
            type=click.Path(path_type=Path),
            help=f"Run folder for {run_holds}.",
        ),
        click.option(
            "--resume", is_flag=True, help="Continue the run in --out from its last checkpoint."
        ),
        click.option("--init-from", default=None, help="Start from the weights of this model."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option(
            "--batch-size", type=int, default=None, help="Override the config's batch size."
        ),
        click.option("--log-every", type=int, default=100, show_default=True),
    ]
    last = [
        click.option("--threads", type=int, default=None, help="Torch threads (default: torch's)."),
        click.option("--force", is_flag=True, help="Start afresh even if --out holds a run."),
    ]

    def decorate(fn):
        for option in reversed([*first, *own_options, *last]):
            fn = option(fn)
        return fn

    return decorate


def check_run_folder(
    run_dir: Path, config_name: str | None, resume: bool, force: bool, batch_size: int | None
) -> None:
    """Refuse to start over a run without --force, to resume where there is no run, to start
    a new run without --config, and to change the batch size of a run being resumed."""
    from musicvae_py.errors import ConfigError, OutputExistsError
    from musicvae_py.training.checkpoint import LATEST

    has_run = (run_dir / LATEST).exists()
    if has_run and not (resume or force):
        raise OutputExistsError(f"{run_dir}: already holds a run (use --resume or --force)")
    if resume and not has_run:
        raise ConfigError(f"{run_dir}: no run to resume (no {LATEST})")
    if not resume and config_name is None:
        raise ConfigError("--config is required for a new run")
    if resume and batch_size:
        raise ConfigError("--batch-size cannot change when resuming (the run keeps its config)")


def run_training(
    config: "Config | None",
    dataset: Any,
    run_dir: Path,
    options: "TrainOptions",
    resume: bool,
    init_from: str | None,
    details: str,
) -> None:
    """Train `config` (None: the run's own, when resuming) on `dataset` into `run_dir`, after
    a line saying what is trained (the model's size, then `details`). Ctrl-C and SIGTERM both
    save a checkpoint; SIGTERM then exits with status 143 (128 + 15). A start refused (say, a
    dataset that does not fit the config) leaves no run folder behind."""
    import signal

    from musicvae_py.fileio import removed_if_left_empty
    from musicvae_py.training.trainer import Trainer, TrainingStopped

    with removed_if_left_empty(run_dir):
        trainer = Trainer(
            config, dataset, run_dir, options, resume=resume, init_from=init_from, report=click.echo
        )
        parameters = sum(p.numel() for p in trainer.model.parameters())
        click.echo(f"config {trainer.config.name}: {parameters} parameters, {details}")
        try:
            with _sigterm_stops(trainer):
                trainer.run()
        except TrainingStopped as err:
            click.echo(f"{err} (continue with --resume)", err=True)
            sys.exit(128 + signal.SIGTERM)
    click.echo(f"done: {run_dir}")


@contextlib.contextmanager
def _sigterm_stops(trainer: "Trainer") -> Iterator[None]:
    """While training, SIGTERM asks the trainer to stop after the step in progress (it saves a
    checkpoint first); the handler from before comes back afterwards. Python runs signal
    handlers in the main thread only, so elsewhere nothing is installed."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: trainer.request_stop("SIGTERM"))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
