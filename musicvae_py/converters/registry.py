"""Which converter serves which data kind: a quantised score to windows, and back to tracks.

A converter is a pair of functions. `extract(score, cfg)` returns every window of a score (an
`Extraction`), or raises `ExtractionError` with the reason the score has none; `tracks(window,
cfg, program, velocity)` turns one window, or several joined in time, back into note tracks.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from musicvae_py.converters.midi_io import NoteList, Score
from musicvae_py.converters.windows import Extraction
from musicvae_py.errors import ConfigError, ExtractionError


@dataclass(frozen=True)
class Converter:
    extract: Callable[[Score, Any], Extraction]
    tracks: Callable[[np.ndarray, Any, int, int], list[NoteList]]


def _melody_extract(score: Score, cfg: Any) -> Extraction:
    from musicvae_py.converters.melody import extract_windows, melody_tracks

    if not melody_tracks(score, cfg):
        raise ExtractionError(score.path, "no melody", "no melodic track")
    extraction = extract_windows(score, cfg)
    if extraction.melodies == 0:
        raise ExtractionError(score.path, "no melody", "no notes in range")
    return extraction


def _melody_tracks(window: np.ndarray, cfg: Any, program: int, velocity: int) -> list[NoteList]:
    from musicvae_py.converters.melody import tokens_to_notelist

    return [tokens_to_notelist(np.ravel(window), cfg, program, velocity)]


def _drum_extract(score: Score, cfg: Any) -> Extraction:
    from musicvae_py.converters.drums import extract_drum_windows

    extraction = extract_drum_windows(score, cfg)
    if extraction.melodies == 0:
        raise ExtractionError(score.path, "no drums", "no drum-channel note of the 9-class kit")
    return extraction


def _drum_tracks(window: np.ndarray, cfg: Any, program: int, velocity: int) -> list[NoteList]:
    from musicvae_py.converters.drums import drum_notelist

    return [drum_notelist(np.ravel(window), velocity)]


def _trio_extract(score: Score, cfg: Any) -> Extraction:
    from musicvae_py.converters.trio import extract_trio_windows

    return extract_trio_windows(score, cfg)


def _trio_tracks(window: np.ndarray, cfg: Any, program: int, velocity: int) -> list[NoteList]:
    from musicvae_py.converters.trio import trio_notelists

    return trio_notelists(window, cfg, program, velocity)


def _roll_extract(score: Score, cfg: Any) -> Extraction:
    from musicvae_py.converters.pianoroll import extract_roll_windows

    return extract_roll_windows(score, cfg)


def _roll_tracks(window: np.ndarray, cfg: Any, program: int, velocity: int) -> list[NoteList]:
    from musicvae_py.converters.pianoroll import roll_notelists

    return roll_notelists(window, cfg, program, velocity)


CONVERTERS: dict[str, Converter] = {
    "melody": Converter(_melody_extract, _melody_tracks),
    "drums": Converter(_drum_extract, _drum_tracks),
    "trio": Converter(_trio_extract, _trio_tracks),
    "pianoroll": Converter(_roll_extract, _roll_tracks),
    "multitrack": Converter(_roll_extract, _roll_tracks),
}


def get_converter(kind: str) -> Converter:
    """The converter of a data kind; the error lists the known kinds."""
    if kind not in CONVERTERS:
        known = ", ".join(sorted(CONVERTERS))
        raise ConfigError(f"no converter for data kind {kind!r} (known: {known})")
    return CONVERTERS[kind]
