"""Checkpoints: safetensors weights, a JSON config, and optimizer state, written atomically.

A run folder holds `ckpt-<step>/` folders and `latest.json` naming the newest complete one. A
checkpoint folder is written under a temporary name and renamed when complete, and
`latest.json` is replaced only afterwards, so a kill at any moment leaves the last good
checkpoint in place. Loading never executes code from a file: weights are safetensors, configs
are JSON, and optimizer state is read with weights-only unpickling.
"""

import itertools
import json
import logging
import os
import pickle
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from musicvae_py.configs import Config
from musicvae_py.errors import CheckpointError, MusicVAEError
from musicvae_py.fileio import write_json

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
OPTIMIZER = "optimizer.pt"
TRAINER = "trainer.json"
LATEST = "latest.json"
DEFAULT_MODEL = "mel_2bar"


def bundled_models() -> dict[str, Path]:
    """Names and folders of the models shipped inside the package."""
    root = Path(str(resources.files("musicvae_py") / "pretrained"))
    return {p.name: p for p in sorted(root.iterdir()) if (p / WEIGHTS).is_file()}


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: nn.Module,
    config: Config,
    optimizer: torch.optim.Optimizer | None = None,
    trainer_state: dict[str, Any] | None = None,
    keep: int = 3,
) -> Path:
    """Write `run_dir/ckpt-<step>/` atomically, point `latest.json` at it, prune old ones.

    A step that already has a checkpoint gets a new folder (`ckpt-<step>-1`, ...), so the
    folder `latest.json` names is never removed before `latest.json` names the new one. Pruning
    keeps the `keep` newest checkpoints up to this one, and removes checkpoints of later steps
    (an earlier run's, in a folder started afresh) and the leftovers of interrupted saves.
    """
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    tmp = run_dir / f".ckpt-{step:08d}.tmp"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        final = next(
            path
            for n in itertools.count()
            if not (path := run_dir / (f"ckpt-{step:08d}" + (f"-{n}" if n else ""))).exists()
        )
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(tmp / WEIGHTS), metadata={"format": str(CHECKPOINT_FORMAT)})
        write_json(
            tmp / CONFIG, {"format": CHECKPOINT_FORMAT, "step": step, "config": config.to_dict()}
        )
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / OPTIMIZER)
        write_json(tmp / TRAINER, trainer_state or {"step": step})
        os.replace(tmp, final)
        write_json(run_dir / LATEST, {"checkpoint": final.name, "step": step})
    except Exception as err:  # the native writers report a full disk with their own error types
        detail = getattr(err, "strerror", None) or str(err).splitlines()[0]
        raise MusicVAEError(f"{run_dir}: cannot write checkpoint ({detail})") from err
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _prune(run_dir, final, keep)
    log.info("saved checkpoint %s", final)
    return final


def _checkpoint_order(folder: Path) -> tuple[int, int] | None:
    """(step, repeat) of a `ckpt-<step>[-<repeat>]` folder, None for other names."""
    parts = folder.name.split("-")
    if parts[0] != "ckpt" or len(parts) not in (2, 3) or not all(p.isdigit() for p in parts[1:]):
        return None
    return int(parts[1]), int(parts[2]) if len(parts) == 3 else 0


def _prune(run_dir: Path, current: Path, keep: int) -> None:
    newest = _checkpoint_order(current)
    folders = sorted(
        (order, folder)
        for folder in run_dir.glob("ckpt-*")
        if (order := _checkpoint_order(folder)) is not None
    )
    older = [folder for order, folder in folders if order <= newest]
    later = [folder for order, folder in folders if order > newest]
    for folder in older[:-keep] + later:
        shutil.rmtree(folder, ignore_errors=True)
    for leftover in [*run_dir.glob(".ckpt-*.tmp"), *run_dir.glob(f".{LATEST}.*.tmp")]:
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def resolve_checkpoint(spec: str | Path | None) -> Path:
    """The checkpoint folder for a bundled model name, a run folder or a checkpoint folder."""
    spec = DEFAULT_MODEL if spec is None else spec
    bundled = bundled_models()
    if str(spec) in bundled:
        return bundled[str(spec)]
    path = Path(spec)
    if (path / LATEST).is_file():
        try:
            name = json.loads((path / LATEST).read_text())["checkpoint"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise CheckpointError(f"{path / LATEST}: malformed ({err})") from err
        if not (path / str(name) / CONFIG).is_file() or not (path / str(name) / WEIGHTS).is_file():
            raise CheckpointError(
                f"{path / LATEST}: names checkpoint {name}, which is missing or incomplete"
            )
        path = path / str(name)
    if path.is_file() and path.name in (WEIGHTS, CONFIG):
        path = path.parent
    if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
        known = ", ".join(bundled) or "none"
        raise CheckpointError(
            f"{spec}: not a model (expected a bundled name [{known}], a run folder, "
            f"or a folder with {WEIGHTS} and {CONFIG})"
        )
    return path


@dataclass
class Checkpoint:
    """A loaded checkpoint: its folder, config, weights and training step."""

    path: Path
    config: Config
    weights: dict[str, torch.Tensor]
    step: int


def read_checkpoint(spec: str | Path | None) -> Checkpoint:
    """Read config and weights of a checkpoint; refuses anything malformed with a clear error."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = resolve_checkpoint(spec)
    try:
        meta = json.loads((path / CONFIG).read_text())
        config = Config.from_dict(meta["config"])
    except (json.JSONDecodeError, KeyError, MusicVAEError) as err:
        raise CheckpointError(f"{path / CONFIG}: malformed config ({err})") from err
    try:
        weights = load_file(str(path / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path / WEIGHTS}: unreadable weights ({err})") from err
    return Checkpoint(path, config, weights, int(meta.get("step", 0)))


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], source: str) -> None:
    """Copy `weights` into `model`, naming any missing, unexpected or mis-shaped tensor."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing:
        raise CheckpointError(f"{source}: missing tensor {missing[0]} ({len(missing)} missing)")
    if unexpected:
        raise CheckpointError(f"{source}: unexpected tensor {unexpected[0]} for this config")
    for name, tensor in weights.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{source}: tensor {name} has shape {list(tensor.shape)}, "
                f"the config needs {list(expected[name].shape)}"
            )
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{source}: tensor {name} holds non-finite values")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in weights.items()})


def load_model(spec: str | Path | None = None) -> tuple[nn.Module, Config]:
    """Build the model of a checkpoint and load its weights, in eval mode."""
    from musicvae_py.models.registry import build_model

    ckpt = read_checkpoint(spec)
    model = build_model(ckpt.config)
    load_weights(model, ckpt.weights, str(ckpt.path / WEIGHTS))
    model.eval()
    return model, ckpt.config


def load_optimizer_state(path: Path) -> dict[str, Any] | None:
    """Optimizer state saved beside the weights, read with weights-only unpickling."""
    file = path / OPTIMIZER
    if not file.is_file():
        return None
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{file}: refused: it holds objects other than tensors and plain values, which "
            f"unpickling would run as code ({str(err).splitlines()[0][:160]})"
        ) from err
    except Exception as err:  # a truncated or corrupt archive fails in varied ways
        raise CheckpointError(
            f"{file}: unreadable optimizer state, truncated or corrupt "
            f"({str(err).splitlines()[0][:160]})"
        ) from err


def restore_optimizer(
    optimizer: torch.optim.Optimizer, model: nn.Module, state: dict[str, Any], source: str
) -> None:
    """Load `state` into `optimizer` (built over `model.parameters()`), refusing state saved
    for other parameters, with the name of the first parameter that does not match."""
    try:
        optimizer.load_state_dict(state)
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise CheckpointError(
            f"{source}: optimizer state does not match the model ({err})"
        ) from err
    for name, param in model.named_parameters():
        for key, value in optimizer.state.get(param, {}).items():
            if torch.is_tensor(value) and value.dim() > 0 and value.shape != param.shape:
                raise CheckpointError(
                    f"{source}: optimizer {key} of {name} has shape {list(value.shape)}, "
                    f"the model needs {list(param.shape)}"
                )


def load_trainer_state(path: Path) -> dict[str, Any]:
    """The trainer's counters saved beside the weights."""
    try:
        state = json.loads((path / TRAINER).read_text())
        int(state["step"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path / TRAINER}: unreadable trainer state ({err!r})") from err
    return state
