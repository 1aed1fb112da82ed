"""Monophonic melodies: extraction from MIDI tracks and the 90-class event encoding.

Token meanings (the reference's melody one-hot encoding):

    0           no event: the sounding note keeps sounding, or the silence continues
    1           note off: the sounding note stops at this step
    2 .. 89     note on for MIDI pitch token + 19, that is pitches 21 .. 108

A token sequence is one event per 16th-note step.
"""

from dataclasses import dataclass

import numpy as np

from musicvae_py.configs import DataConfig
from musicvae_py.converters.midi_io import NoteList, Score, Track
from musicvae_py.converters.windows import Extraction, cut_windows

NO_EVENT = 0
NOTE_OFF = 1
FIRST_PITCH_TOKEN = 2


def pitch_to_token(pitch: int, min_pitch: int = 21) -> int:
    """The note-on token of a MIDI pitch."""
    return pitch - min_pitch + FIRST_PITCH_TOKEN


def token_to_pitch(token: int, min_pitch: int = 21) -> int:
    """The MIDI pitch of a note-on token (token >= 2)."""
    return token - FIRST_PITCH_TOKEN + min_pitch


@dataclass
class Melody:
    """An extracted melody: its first step in the source and one token per step."""

    start_step: int
    tokens: np.ndarray  # int16 [steps]
    program: int = 0


def extract_track_melodies(track: Track, score: Score, cfg: DataConfig) -> list[Melody]:
    """Split one instrument track into monophonic melodies.

    Notes are taken in onset order; of notes starting together the highest wins; a new onset
    ends the note before it; a silence of `cfg.gap_steps` or more ends the melody and a new
    one starts at the bar of the next note. Notes outside the pitch range are dropped first.
    A melody whose last note ends on a bar line ends there, rather than with a bar holding
    only that note's off event.
    """
    in_range = (track.pitch >= cfg.min_pitch) & (track.pitch <= cfg.max_pitch)
    pitch, start, end = track.pitch[in_range], track.start[in_range], track.end[in_range]
    order = np.lexsort((-pitch.astype(np.int64), start))
    pitch, start, end = pitch[order], start[order], end[order]

    melodies: list[Melody] = []
    i, n = 0, len(pitch)
    while i < n:
        origin = score.bar_start(int(start[i]))
        events: list[int] = []
        last_on, last_off = -1, -1
        while i < n:
            on, off = int(start[i]) - origin, int(end[i]) - origin
            if last_on >= 0:
                if on == last_on:  # a lower note of a chord: the highest already won
                    i += 1
                    continue
                if on - last_off >= cfg.gap_steps:
                    break
            _add_note(events, pitch_to_token(int(pitch[i]), cfg.min_pitch), on, off)
            last_on, last_off = on, off
            i += 1
        if len(events) % 16 == 1 and events[-1] == NOTE_OFF:
            events.pop()  # an off on the bar line after the end: the end stops the note anyway
        tokens = np.asarray(events[: cfg.max_melody_steps], dtype=np.int16)
        pad = -len(tokens) % 16  # end on a whole 4/4 bar
        tokens = np.concatenate([tokens, np.zeros(pad, dtype=np.int16)])
        if np.any(tokens >= FIRST_PITCH_TOKEN):
            melodies.append(Melody(origin, tokens, track.program))
    return melodies


def melody_line(track: Track, cfg: DataConfig, steps: int) -> np.ndarray:
    """The whole track as one monophonic line of tokens int16 [steps] from step 0, by the
    rules of `extract_track_melodies` but never split at silences."""
    in_range = (track.pitch >= cfg.min_pitch) & (track.pitch <= cfg.max_pitch)
    pitch, start, end = track.pitch[in_range], track.start[in_range], track.end[in_range]
    order = np.lexsort((-pitch.astype(np.int64), start))
    events: list[int] = []
    last_on = -1
    for p, on, off in zip(
        pitch[order].tolist(), start[order].tolist(), end[order].tolist(), strict=True
    ):
        if on == last_on or on >= steps:  # a lower note of a chord, or past the end
            continue
        _add_note(events, pitch_to_token(p, cfg.min_pitch), on, min(off, steps))
        last_on = on
    tokens = np.zeros(steps, dtype=np.int16)
    tokens[: min(steps, len(events))] = events[:steps]
    return tokens


def _add_note(events: list[int], token: int, on: int, off: int) -> None:
    """Write a note from step `on` to `off` over the events, ending whatever sounded: the
    events after the note's end are dropped, so a note starting inside a longer one leaves
    no stray note-off of the longer one behind."""
    del events[off + 1 :]
    events.extend([NO_EVENT] * (off + 1 - len(events)))
    events[on] = token
    for step in range(on + 1, off):
        events[step] = NO_EVENT
    events[off] = NOTE_OFF


def melody_tracks(score: Score, cfg: DataConfig) -> list[Track]:
    """The tracks melodies are taken from: not drums, and within the program filter."""
    tracks = [t for t in score.tracks if not t.is_drum]
    if cfg.programs is not None:
        low, high = cfg.programs
        tracks = [t for t in tracks if low <= t.program <= high]
    return tracks


def extract_windows(score: Score, cfg: DataConfig) -> Extraction:
    """All windows of all melodies of `score`, duplicates within the file removed, in order."""
    sequences = [
        (melody.start_step, melody.tokens)
        for track in melody_tracks(score, cfg)
        for melody in extract_track_melodies(track, score, cfg)
    ]
    return cut_windows(sequences, score, cfg)


def tokens_to_notes(
    tokens: np.ndarray, min_pitch: int = 21, offset: int = 0
) -> list[tuple[int, int, int]]:
    """Decode a token sequence into (pitch, start step, end step) notes.

    A note-on ends the note before it; a note off ends it; the sequence end ends it too.
    """
    notes = []
    current, begun = -1, 0
    for step, token in enumerate(np.asarray(tokens).tolist()):
        if token == NO_EVENT:
            continue
        if current >= 0:
            notes.append((current, begun + offset, step + offset))
            current = -1
        if token >= FIRST_PITCH_TOKEN:
            current, begun = token_to_pitch(token, min_pitch), step
    if current >= 0:
        notes.append((current, begun + offset, len(tokens) + offset))
    return notes


def notes_to_tokens(
    notes: list[tuple[int, int, int]], steps: int, min_pitch: int = 21
) -> np.ndarray:
    """Encode monophonic (pitch, start, end) notes into `steps` tokens (inverse of decoding)."""
    events: list[int] = []
    for pitch, on, off in sorted(notes, key=lambda n: n[1]):
        _add_note(events, pitch_to_token(pitch, min_pitch), on, off)
    tokens = np.zeros(steps, dtype=np.int16)
    tokens[: min(steps, len(events))] = events[:steps]
    return tokens


def tokens_to_notelist(
    tokens: np.ndarray, cfg: DataConfig, program: int = 0, velocity: int = 80
) -> NoteList:
    """One output track from a token sequence of any length."""
    return NoteList(tokens_to_notes(tokens, cfg.min_pitch), program, False, velocity, "melody")
