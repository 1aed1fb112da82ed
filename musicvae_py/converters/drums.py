"""Drum tracks: the reference's 9-class reduced kit, as 512-way step tokens and 10-dim rolls.

Each step holds the set of drum classes struck there. Its token is the sum of 2 ** class over
those classes (0 = silence, 511 = all nine); the encoder reads a roll of the 9 class bits plus a
10th bit that is 1 when nothing is struck. Velocities and micro-timing are dropped.
"""

import numpy as np
import torch

from musicvae_py.configs import DataConfig
from musicvae_py.converters.midi_io import NoteList, Score
from musicvae_py.converters.windows import Extraction, cut_windows

# Class -> General MIDI pitches; the first pitch of each row is the one written when decoding.
DRUM_CLASS_PITCHES: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("kick", (36, 35)),
    ("snare", (38, 27, 28, 31, 32, 33, 34, 37, 39, 40, 56, 65, 66, 75, 85)),
    ("closed hi-hat", (42, 44, 54, 68, 69, 70, 71, 73, 78, 80, 22)),
    ("open hi-hat", (46, 67, 72, 74, 79, 81, 26)),
    ("low tom", (45, 29, 41, 43, 61, 64, 84)),
    ("mid tom", (48, 47, 60, 63, 77, 86, 87)),
    ("high tom", (50, 30, 62, 76, 83)),
    ("crash", (49, 52, 55, 57, 58)),
    ("ride", (51, 53, 59, 82)),
)
NUM_DRUM_CLASSES = len(DRUM_CLASS_PITCHES)
NUM_DRUM_TOKENS = 2**NUM_DRUM_CLASSES
PITCH_TO_CLASS = {p: c for c, (_, pitches) in enumerate(DRUM_CLASS_PITCHES) for p in pitches}
CLASS_TO_PITCH = tuple(pitches[0] for _, pitches in DRUM_CLASS_PITCHES)


def drum_steps(score: Score) -> dict[int, int]:
    """Step -> token of every step where a mapped drum is struck, over all drum tracks."""
    steps: dict[int, int] = {}
    for track in score.tracks:
        if not track.is_drum:
            continue
        for pitch, start in zip(track.pitch.tolist(), track.start.tolist(), strict=True):
            drum_class = PITCH_TO_CLASS.get(pitch)
            if drum_class is not None:
                steps[start] = steps.get(start, 0) | (1 << drum_class)
    return steps


def extract_drum_tracks(score: Score, cfg: DataConfig) -> list[tuple[int, np.ndarray]]:
    """Split the drum hits of `score` into tracks at silences of `cfg.gap_steps` or more.

    Returns (first step, tokens int16 [steps]) pairs; each track starts on the bar line before
    its first hit, is cut to `cfg.max_melody_steps` and padded to whole 16-step bars.
    """
    hits = sorted(drum_steps(score).items())
    tracks, i = [], 0
    while i < len(hits):
        origin = score.bar_start(hits[i][0])
        events: dict[int, int] = {}
        last = hits[i][0]
        while i < len(hits) and hits[i][0] - last < cfg.gap_steps:
            last = hits[i][0]
            events[last - origin] = hits[i][1]
            i += 1
        length = min(last - origin + 1, cfg.max_melody_steps)
        tokens = np.zeros(-(-length // 16) * 16, dtype=np.int16)
        for step, token in events.items():
            if step < length:
                tokens[step] = token
        tracks.append((origin, tokens))
    return tracks


def extract_drum_windows(score: Score, cfg: DataConfig) -> Extraction:
    """All drum windows of `score`, duplicates within the file removed, in order."""
    return cut_windows(extract_drum_tracks(score, cfg), score, cfg)


def tokens_to_drum_notes(tokens: np.ndarray, offset: int = 0) -> list[tuple[int, int, int]]:
    """Decode tokens into one-step (pitch, start, end) hits, one per struck class."""
    notes = []
    for step, token in enumerate(np.asarray(tokens).tolist()):
        for drum_class in range(NUM_DRUM_CLASSES):
            if token >> drum_class & 1:
                start = step + offset
                notes.append((CLASS_TO_PITCH[drum_class], start, start + 1))
    return notes


def drum_notelist(tokens: np.ndarray, velocity: int = 80) -> NoteList:
    """A drum-channel output track from drum tokens."""
    return NoteList(tokens_to_drum_notes(tokens), 0, True, velocity, "drums")


def drum_roll(tokens: torch.Tensor) -> torch.Tensor:
    """Tokens long [batch, steps] -> float [batch, steps, 10]: class bits, then a no-hit bit."""
    bits = (tokens[..., None] >> torch.arange(NUM_DRUM_CLASSES)) & 1
    silent = (tokens == 0)[..., None]
    return torch.cat([bits, silent], dim=-1).float()
