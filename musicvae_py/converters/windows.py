"""Cutting extracted event sequences into fixed-length training windows."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from musicvae_py.configs import DataConfig
from musicvae_py.converters.midi_io import Score


@dataclass
class Extraction:
    """Every window of one file, with where each starts and the meter it starts in."""

    windows: np.ndarray  # [n, *window_shape]: int16 tokens, or uint8 piano-roll cells
    meters: list[str]
    melodies: int  # sequences extracted before windowing
    starts: list[int]  # the first step of each window in the file
    empty_windows: int = 0  # windows dropped because no note sounds in them (piano rolls)


def cut_windows(
    sequences: list[tuple[int, np.ndarray]],
    score: Score,
    cfg: DataConfig,
    is_empty: Callable[[np.ndarray], bool] | None = None,
) -> Extraction:
    """Windows of `cfg.window_steps` with a hop of `cfg.hop_steps` from (first step, sequence
    [steps, ...]) pairs; a window equal to an earlier one of the same file is dropped, and so
    is one for which `is_empty` holds (counted in `empty_windows`)."""
    seen: set[bytes] = set()
    rows, meters, starts, empty = [], [], [], 0
    for origin, sequence in sequences:
        for offset in range(0, len(sequence) - cfg.window_steps + 1, cfg.hop_steps):
            window = sequence[offset : offset + cfg.window_steps]
            if is_empty is not None and is_empty(window):
                empty += 1
                continue
            key = window.tobytes()
            if key in seen:
                continue
            seen.add(key)
            rows.append(window)
            meters.append(score.meter_at(origin + offset))
            starts.append(origin + offset)
    if rows:
        windows = np.stack(rows)
    else:
        dtype = sequences[0][1].dtype if sequences else np.int16
        windows = np.zeros((0, *cfg.window_shape), dtype=dtype)
    return Extraction(windows, meters, len(sequences), starts, empty_windows=empty)
