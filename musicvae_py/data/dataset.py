"""Reading a prepared dataset and drawing reproducible, augmented training batches."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from musicvae_py.configs import Config, DataConfig
from musicvae_py.converters.melody import FIRST_PITCH_TOKEN
from musicvae_py.errors import DatasetError


@dataclass
class Dataset:
    """The windows of one prepared dataset, by split, with its data config."""

    path: Path
    data: DataConfig
    splits: dict[str, torch.Tensor]  # split -> long [windows, steps]
    meta: dict

    def windows(self, split: str) -> torch.Tensor:
        """All windows of a split, long [n, steps]."""
        if split not in self.splits:
            raise DatasetError(f"{self.path}: no split named {split!r}")
        return self.splits[split]

    def num_examples(self, split: str) -> int:
        """How many windows a split holds."""
        return len(self.windows(split))

    def batch(self, split: str, rows: torch.Tensor) -> torch.Tensor:
        """The windows at `rows` (long [batch]) of a split: long [batch, steps]."""
        return self.windows(split)[rows]

    def check_compatible(self, config: Config) -> None:
        """Refuse a config whose representation differs from the dataset's."""
        for name in ("kind", "window_steps", "min_pitch", "max_pitch"):
            want, have = getattr(config.data, name), getattr(self.data, name)
            if want != have:
                raise DatasetError(
                    f"{self.path}: dataset {name} is {have}, config {config.name} needs {want}"
                )


def load_dataset(path: str | Path) -> Dataset:
    """Load a dataset folder written by `prepare_dataset`."""
    path = Path(path)
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise DatasetError(f"{path}: not a prepared dataset (no meta.json; run musicvae prepare)")
    try:
        meta = json.loads(meta_path.read_text())
        data = DataConfig(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in meta["data"].items()}
        )
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise DatasetError(f"{meta_path}: malformed ({err})") from err
    splits = {}
    for split in ("train", "valid"):
        file = path / f"{split}.npy"
        try:
            rows = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DatasetError(f"{file}: unreadable ({err})") from err
        if rows.ndim != 2 or (len(rows) and rows.shape[1] != data.window_steps):
            raise DatasetError(
                f"{file}: expected [n, {data.window_steps}] windows, found {list(rows.shape)}"
            )
        if len(rows) and rows.max() >= data.num_classes:
            raise DatasetError(f"{file}: token {rows.max()} outside the {data.num_classes} classes")
        splits[split] = torch.from_numpy(rows.astype(np.int64))
    return Dataset(path, data, splits, meta)


class BatchSampler:
    """Seeded epochs of shuffled batches; batch k is a pure function of (seed, k).

    A run resumed at step k therefore sees exactly the batches an uninterrupted run would.
    """

    def __init__(self, num_examples: int, batch_size: int, seed: int) -> None:
        if num_examples == 0:
            raise DatasetError("the training split holds no examples")
        self.num_examples = num_examples
        self.batch_size = min(batch_size, num_examples)
        self.seed = seed
        self.per_epoch = num_examples // self.batch_size
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.long)

    def rows(self, k: int) -> torch.Tensor:
        """The example indices of the k-th batch of the run, long [batch]."""
        epoch, index = divmod(k, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._order = epoch, torch.randperm(self.num_examples, generator=g)
        return self._order[index * self.batch_size : (index + 1) * self.batch_size]


def transpose_tokens(
    tokens: torch.Tensor, max_shift: int, num_classes: int, generator: torch.Generator
) -> torch.Tensor:
    """Shift every window by a random number of semitones that keeps all its notes in range.

    tokens: long [batch, steps] melody tokens. Each row gets its own shift, uniform over the
    shifts in [-max_shift, max_shift] that keep its lowest and highest notes inside the range.
    """
    if max_shift <= 0:
        return tokens
    is_pitch = tokens >= FIRST_PITCH_TOKEN
    big = torch.full_like(tokens, num_classes)
    low = torch.where(is_pitch, tokens, big).min(dim=1).values
    high = torch.where(is_pitch, tokens, torch.zeros_like(tokens)).max(dim=1).values
    down = torch.clamp(low - FIRST_PITCH_TOKEN, max=max_shift)  # room below, per row
    up = torch.clamp(num_classes - 1 - high, max=max_shift)  # room above, per row
    down = torch.where(is_pitch.any(dim=1), down, torch.zeros_like(down))
    up = torch.where(is_pitch.any(dim=1), up, torch.zeros_like(up))
    u = torch.rand(len(tokens), generator=generator)
    shift = (u * (down + up + 1)).floor().long() - down
    return torch.where(is_pitch, tokens + shift[:, None], tokens)
