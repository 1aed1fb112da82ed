"""Cutting extracted event sequences into fixed-length training windows."""

from dataclasses import dataclass

import numpy as np

from musicvae_py.configs import DataConfig
from musicvae_py.converters.midi_io import Score


@dataclass
class Extraction:
    """Every window of one file, with where each starts and the meter it starts in."""

    windows: np.ndarray  # int16 [n, window_steps]
    meters: list[str]
    melodies: int  # sequences extracted before windowing
    starts: list[int]  # the first step of each window in the file


def cut_windows(
    sequences: list[tuple[int, np.ndarray]], score: Score, cfg: DataConfig
) -> Extraction:
    """Windows of `cfg.window_steps` with a hop of `cfg.hop_steps` from (first step, tokens)
    sequences; a window equal to an earlier one of the same file is dropped."""
    seen: set[bytes] = set()
    rows, meters, starts = [], [], []
    for origin, tokens in sequences:
        for offset in range(0, len(tokens) - cfg.window_steps + 1, cfg.hop_steps):
            window = tokens[offset : offset + cfg.window_steps]
            key = window.tobytes()
            if key in seen:
                continue
            seen.add(key)
            rows.append(window)
            meters.append(score.meter_at(origin + offset))
            starts.append(origin + offset)
    empty = np.zeros((0, cfg.window_steps), dtype=np.int16)
    return Extraction(np.stack(rows) if rows else empty, meters, len(sequences), starts)
