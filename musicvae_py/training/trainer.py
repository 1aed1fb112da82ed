"""The one training loop, for every model of the toolkit.

A model supplies `augment(batch, generator)`, `training_loss(batch, step) -> (loss, scalars)`,
`evaluate_batch(batch, generator)` and `summarize_evaluation(parts)`, and may supply
`epoch_end(run_dir, epoch, dataset)`, called after every epoch (image models save picture
grids there); a dataset supplies
`num_examples(split)`, `batch(split, rows)` and `check_compatible(config)`. The loop owns the
data order, the optimiser and learning-rate decay, gradient clipping, non-finite steps,
evaluation, logging and checkpoints. Every random draw of step k is seeded from (seed, k), so a
run resumed from a checkpoint repeats exactly what an uninterrupted run would have done.

The log line of an interval shows the step, then those of the model's training scalars that
`LOG_FIELDS` names and the model reports (a plain autoencoder has no KL, beta or p_sample), then
ms/step and the learning rate.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from musicvae_py.configs import Config
from musicvae_py.data.dataset import BatchSampler
from musicvae_py.errors import CheckpointError, ConfigError, MusicVAEError
from musicvae_py.fileio import writable_folder
from musicvae_py.models.registry import build_model
from musicvae_py.training.checkpoint import (
    load_optimizer_state,
    load_trainer_state,
    load_weights,
    read_checkpoint,
    resolve_checkpoint,
    restore_optimizer,
    save_checkpoint,
)
from musicvae_py.training.evaluate import evaluate_model, format_metrics

log = logging.getLogger(__name__)


# (scalar, label and format, how an interval sums it up): the training scalars a log line shows,
# in order, when the model reports them; "last" shows the value at the interval's last step
LOG_FIELDS = (
    ("loss", "loss {:8.3f}", "mean"),
    ("r_loss", "recon {:7.3f}", "mean"),
    ("kl_bits", "KL {:6.2f} bits", "mean"),
    ("beta", "beta {:.3f}", "last"),
    ("p_sample", "p_sample {:.3f}", "last"),
    ("accuracy", "acc {:.3f}", "mean"),
)


class TrainingError(MusicVAEError):
    """Training cannot go on (for example, too many non-finite steps in a row)."""


class TrainingStopped(MusicVAEError):
    """Training stopped on request (`Trainer.request_stop`, e.g. on SIGTERM) after a whole
    step, whose state was saved first; the message names the checkpoint."""


@dataclass
class TrainOptions:
    """How one run is driven; the model and loss settings live in the Config."""

    num_steps: int | None = None  # None: the config's num_steps
    seed: int = 0
    log_every: int = 100
    eval_every: int = 1000
    checkpoint_every: int = 500
    eval_windows: int | None = 2048  # held-out windows per evaluation, None for all
    keep_checkpoints: int = 3
    max_nonfinite_in_a_row: int = 20
    threads: int | None = None


def learning_rate_at(step: int, config: Config) -> float:
    """lr = (lr0 - lr_min) * decay_rate ** step + lr_min."""
    t = config.train
    return (t.learning_rate - t.min_learning_rate) * t.decay_rate**step + t.min_learning_rate


def config_difference(run: Config, given: Config) -> str:
    """The first setting in which a run's config and a given one differ, in words; "" when
    they differ at most in name and description."""

    def flat(config: Config) -> dict[str, Any]:
        items = config.to_dict().items()
        return {
            f"{section}.{key}" if isinstance(values, dict) else section: value
            for section, values in items
            for key, value in (values.items() if isinstance(values, dict) else [("", values)])
        }

    have, want = flat(run), flat(given)
    for key in sorted((set(have) | set(want)) - {"name", "description"}):
        if have.get(key) != want.get(key):
            return f"the run has {key} = {have.get(key)!r}, the given config {want.get(key)!r}"
    return ""


def step_seed(seed: int, step: int) -> int:
    """The seed of every random draw at `step` of a run seeded with `seed`."""
    return (seed * 2_654_435_761 + step * 40_503 + 1) % (2**63 - 1)


class Trainer:
    """Trains a model of `config` on `dataset`, writing checkpoints into `run_dir`."""

    def __init__(
        self,
        config: Config,
        dataset: Any,
        run_dir: str | Path,
        options: TrainOptions | None = None,
        resume: bool = False,
        init_from: str | Path | None = None,
        report: Callable[[str], None] | None = None,
    ):
        self.options = options or TrainOptions()
        self.run_dir = writable_folder(run_dir)  # fail now, not at the first checkpoint
        self.dataset = dataset
        self.report = report or log.info
        self.step = 0
        self.nonfinite_total = 0
        self.skipped_because = ""  # why the last step was skipped, "" when it was not
        self.stop_reason = ""  # set by `request_stop`; the loop stops before its next step
        self.history: list[dict] = []

        if resume:
            ckpt = read_checkpoint(self.run_dir)
            difference = config_difference(ckpt.config, config) if config else ""
            if difference:
                raise CheckpointError(
                    f"{ckpt.path}: config mismatch: {difference} "
                    "(resume without --config, or start a new run)"
                )
            config = ckpt.config
        self.config = config
        if config.train.precision != "fp32":
            raise ConfigError(
                f"config {config.name}: precision {config.train.precision!r} is not supported "
                "yet (the LSTM layers have no bf16 kernel on the CPU); use fp32"
            )
        dataset.check_compatible(config)
        torch.manual_seed(step_seed(self.options.seed, -1))  # the initial weights
        self.model = build_model(config)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.train.learning_rate)

        if resume:
            load_weights(self.model, ckpt.weights, str(ckpt.path))
            state = load_optimizer_state(ckpt.path)
            if state is None:
                raise CheckpointError(f"{ckpt.path}: no optimizer state, cannot resume")
            restore_optimizer(self.optimizer, self.model, state, str(ckpt.path))
            trainer_state = load_trainer_state(ckpt.path)
            self.step = int(trainer_state["step"])
            self.options.seed = int(trainer_state.get("seed", self.options.seed))
            self.nonfinite_total = int(trainer_state.get("nonfinite_total", 0))
            self.history = list(trainer_state.get("history", []))
            self.report(f"resumed from {ckpt.path} at step {self.step}")
        elif init_from is not None:
            source = read_checkpoint(init_from)
            load_weights(self.model, source.weights, str(resolve_checkpoint(init_from)))
            self.report(f"initialised weights from {source.path}")

        self.sampler = BatchSampler(
            dataset.num_examples("train"), config.train.batch_size, self.options.seed
        )

    def _trainer_state(self) -> dict:
        return {
            "step": self.step,
            "seed": self.options.seed,
            "nonfinite_total": self.nonfinite_total,
            "history": self.history,
        }

    def save(self) -> Path:
        """Checkpoint the current state."""
        return save_checkpoint(
            self.run_dir,
            self.step,
            self.model,
            self.config,
            self.optimizer,
            self._trainer_state(),
            self.options.keep_checkpoints,
        )

    def request_stop(self, reason: str) -> None:
        """Ask `run` to stop before its next step: it saves a checkpoint and raises
        `TrainingStopped` naming `reason`. Only sets a flag, so a signal handler may call it
        at any moment without cutting a step (or an evaluation) in half."""
        self.stop_reason = reason

    def train_step(self) -> dict[str, float] | None:
        """One optimisation step; None when the step was skipped as non-finite (its cause is
        in `skipped_because`). A skipped step changes nothing: buffers a model updates in its
        loss (running statistics) are restored too."""
        t = self.config.train
        seed = step_seed(self.options.seed, self.step)
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        batch = self.dataset.batch("train", self.sampler.rows(self.step))
        batch = self.model.augment(batch, generator)

        lr = learning_rate_at(self.step, self.config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        buffers = [b.detach().clone() for b in self.model.buffers()]
        loss, scalars = self.model.training_loss(batch, self.step)
        self.skipped_because = "loss" if not torch.isfinite(loss) else ""
        if not self.skipped_because:
            loss.backward()
            params = [p for p in self.model.parameters() if p.grad is not None]
            norm = torch.nn.utils.clip_grad_norm_(params, t.grad_clip)
            self.skipped_because = "" if torch.isfinite(norm) else "gradient norm"
        if self.skipped_because:
            with torch.no_grad():
                for saved, buffer in zip(buffers, self.model.buffers(), strict=True):
                    buffer.copy_(saved)
            return None
        if norm > t.grad_norm_clip_to_zero:
            for p in params:  # the reference passes zeros to Adam so its moments decay
                p.grad.zero_()
        self.optimizer.step()
        scalars.update(lr=lr, grad_norm=float(norm))
        return scalars

    def run(self) -> dict[str, float]:
        """Train to `num_steps`, evaluating and checkpointing on the way; returns the last
        evaluation. Ctrl-C saves a checkpoint before stopping; so does `request_stop`, at the
        end of the step in progress, then raises `TrainingStopped`."""
        opts = self.options
        if opts.threads:
            torch.set_num_threads(opts.threads)
        num_steps = opts.num_steps or self.config.train.num_steps
        nonfinite_in_a_row = 0
        window: list[dict[str, float]] = []
        started = time.perf_counter()
        last_eval: dict[str, float] = {}
        try:
            while self.step < num_steps:
                if self.stop_reason:
                    path = self.save()
                    raise TrainingStopped(
                        f"stopped by {self.stop_reason} at step {self.step}; checkpoint saved "
                        f"in {path}"
                    )
                scalars = self.train_step()
                if scalars is None:
                    nonfinite_in_a_row += 1
                    self.nonfinite_total += 1
                    self.report(
                        f"step {self.step + 1}: non-finite {self.skipped_because}, step skipped "
                        f"({nonfinite_in_a_row} in a row, {self.nonfinite_total} in the run)"
                    )
                    self.step += 1
                    if nonfinite_in_a_row >= opts.max_nonfinite_in_a_row:
                        self.step -= nonfinite_in_a_row  # the weights are those of the last good
                        path = self.save()
                        raise TrainingError(
                            f"{nonfinite_in_a_row} non-finite steps in a row; stopped, last good "
                            f"state saved in {path} (try a lower learning rate)"
                        )
                    continue
                nonfinite_in_a_row = 0
                window.append(scalars)
                self.step += 1
                if self.step % opts.log_every == 0 or self.step == num_steps:
                    elapsed = time.perf_counter() - started
                    self.report(self._log_line(window, elapsed))
                    window, started = [], time.perf_counter()
                if self.step % opts.eval_every == 0 or self.step == num_steps:
                    last_eval = self.evaluate()
                if self.step % opts.checkpoint_every == 0 or self.step == num_steps:
                    self.save()
                if self.step % self.sampler.per_epoch == 0 and hasattr(self.model, "epoch_end"):
                    self.model.epoch_end(
                        self.run_dir, self.step // self.sampler.per_epoch, self.dataset
                    )
        except KeyboardInterrupt:
            path = self.save()
            self.report(f"interrupted at step {self.step}; checkpoint saved in {path}")
            raise
        return last_eval

    def evaluate(self) -> dict[str, float]:
        """Evaluate on the held-out split and record the metrics in the run's history."""
        if self.dataset.num_examples("valid") == 0:
            return {}
        metrics = evaluate_model(
            self.model,
            self.dataset,
            "valid",
            seed=self.options.seed,
            max_examples=self.options.eval_windows,
        )
        self.history.append({"step": self.step, **metrics})
        self.report(f"eval step {self.step}: " + format_metrics(metrics))
        return metrics

    def _log_line(self, window: list[dict[str, float]], elapsed: float) -> str:
        """One line for an interval of steps (their scalars in `window`): the fields of
        `LOG_FIELDS` the model reports, then ms/step and the learning rate."""
        last = window[-1] if window else {}
        fields = [f"step {self.step:>7}"]
        for key, template, summary in LOG_FIELDS:
            values = [w[key] for w in window if key in w]
            if values:
                value = values[-1] if summary == "last" else sum(values) / len(values)
                fields.append(template.format(value))
        ms = 1000 * elapsed / max(len(window), 1)
        fields += [f"{ms:6.1f} ms/step", f"lr {last.get('lr', 0):.2e}"]
        return " | ".join(fields)
