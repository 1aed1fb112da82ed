"""Reading a prepared dataset and drawing reproducible, augmented training batches."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musicvae_py.configs import Config, data_config_from_dict
from musicvae_py.converters.melody import FIRST_PITCH_TOKEN
from musicvae_py.errors import ConfigError, DatasetError


@dataclass
class Dataset:
    """The windows of one prepared dataset, by split, with its data config."""

    path: Path
    data: Any
    splits: dict[str, torch.Tensor]  # split -> [windows, *window_shape], as stored
    meta: dict

    def windows(self, split: str) -> torch.Tensor:
        """All windows of a split as stored: [n, *window_shape] (uint8 or int32 tokens)."""
        if split not in self.splits:
            raise DatasetError(f"{self.path}: no split named {split!r}")
        return self.splits[split]

    def num_examples(self, split: str) -> int:
        """How many windows a split holds."""
        return len(self.windows(split))

    def batch(self, split: str, rows: torch.Tensor) -> torch.Tensor:
        """The windows at `rows` (long [batch]) of a split: long [batch, *window_shape]."""
        return self.windows(split)[rows].long()

    def check_compatible(self, config: Config) -> None:
        """Refuse a config whose representation differs from the dataset's: every data
        setting but training-time augmentation must match."""
        want, have = asdict(config.data), asdict(self.data)
        for name in sorted(set(want) | set(have)):
            if name != "transpose" and want.get(name) != have.get(name):
                raise DatasetError(
                    f"{self.path}: dataset {name} is {have.get(name)}, config {config.name} "
                    f"needs {want.get(name)}"
                )


def load_dataset(path: str | Path) -> Dataset:
    """Load a dataset folder written by `prepare_dataset`."""
    path = Path(path)
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise DatasetError(f"{path}: not a prepared dataset (no meta.json; run musicvae prepare)")
    try:
        meta = json.loads(meta_path.read_text())
        data = data_config_from_dict(meta["data"])
    except (json.JSONDecodeError, KeyError, TypeError, ConfigError) as err:
        raise DatasetError(f"{meta_path}: malformed ({err})") from err
    splits = {}
    for split in ("train", "valid", "test"):
        file = path / f"{split}.npy"
        if split == "test" and not file.exists():
            continue  # only corpora with their own split table have a test split
        try:
            rows = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DatasetError(f"{file}: unreadable ({err})") from err
        if rows.shape[1:] != data.window_shape:
            shape = ", ".join(["n", *map(str, data.window_shape)])
            raise DatasetError(f"{file}: expected [{shape}] windows, found {list(rows.shape)}")
        problem = data.window_problem(rows)
        if problem:
            raise DatasetError(f"{file}: {problem}")
        # torch has few uint16 kernels: wider token types are held as int32
        splits[split] = torch.from_numpy(rows if rows.dtype == np.uint8 else rows.astype(np.int32))
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
