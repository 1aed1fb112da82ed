"""Held-out evaluation of any model on a split of its dataset."""

from typing import Any

import torch
from torch import nn

from musicvae_py.errors import DatasetError


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    dataset: Any,
    split: str = "valid",
    batch_size: int = 256,
    seed: int = 0,
    max_examples: int | None = None,
) -> dict[str, float]:
    """Metrics of `model` on a split; seeded, so the same call gives the same numbers.

    The model supplies `evaluate_batch(batch, generator)` sums and `summarize_evaluation(parts)`
    turns them into metrics.
    """
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    rows = torch.arange(dataset.num_examples(split))
    if max_examples is not None and max_examples < 1:
        raise DatasetError(f"{dataset.path}: at least one example is needed, not {max_examples}")
    if not len(rows):
        raise DatasetError(
            f"{dataset.path}: split {split!r} holds no examples (a corpus of few files may put "
            "every file in train; prepare with a larger --valid-fraction or more files)"
        )
    if max_examples is not None and len(rows) > max_examples:
        rows = torch.randperm(len(rows), generator=generator)[:max_examples].sort().values
    parts = [
        model.evaluate_batch(dataset.batch(split, rows[i : i + batch_size]), generator)
        for i in range(0, len(rows), batch_size)
    ]
    model.train(was_training)
    return model.summarize_evaluation(parts)


def format_metrics(metrics: dict[str, float]) -> str:
    """One line of metrics: accuracies to 4 places, nats and bits to 2."""
    parts = []
    for key, value in metrics.items():
        if isinstance(value, float):
            parts.append(f"{key} {value:.4f}" if abs(value) <= 1 else f"{key} {value:.2f}")
        elif not isinstance(value, dict | list):
            parts.append(f"{key} {value}")
    return " | ".join(parts)
