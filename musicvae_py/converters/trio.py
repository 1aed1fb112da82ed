"""Trios: melody, bass and drums played together, one token of each per step.

A trio window is int16 [steps, 3]: the melody (the 90-class melody encoding), the bass (the
same encoding) and the drums (512 classes, see `converters.drums`). Parts are typed by program:
the melody is a non-drum track with a program in `cfg.programs` (0-31), the bass one in
`cfg.bass_programs` (32-39), the drums every drum-channel note. Every pairing of one melody
track with one bass track, over the file's drums, is a candidate.

A window is kept only where all three parts play throughout. A part covers the bars it sounds
in, with silences of up to `cfg.gap_steps` filled; windows start on every bar of a stretch of
bars that all three cover. When a file has none, the error says which part is missing, or that
the parts never play together for a whole window.
"""

import numpy as np

from musicvae_py.configs import DataConfig
from musicvae_py.converters.drums import drum_notelist, drum_steps
from musicvae_py.converters.melody import melody_line, tokens_to_notelist
from musicvae_py.converters.midi_io import NoteList, Score, Track
from musicvae_py.converters.windows import Extraction, cut_windows
from musicvae_py.errors import ExtractionError

BAR_STEPS = 16
BASS_PROGRAM = 33  # written bass parts: General MIDI electric bass (finger)


def _tracks_in(score: Score, programs: tuple[int, int], cfg: DataConfig) -> list[Track]:
    low, high = programs
    return [
        t
        for t in score.tracks
        if not t.is_drum
        and low <= t.program <= high
        and np.any((t.pitch >= cfg.min_pitch) & (t.pitch <= cfg.max_pitch))
    ]


def covered_bars(sounding: np.ndarray, gap_bars: int) -> np.ndarray:
    """Bars a part covers: those it sounds in (bool [bars]), with runs of up to `gap_bars`
    silent bars between two sounding ones filled."""
    covered = sounding.copy()
    playing = np.flatnonzero(sounding)
    for a, b in zip(playing[:-1], playing[1:], strict=True):
        if 1 < b - a <= gap_bars + 1:
            covered[a:b] = True
    return covered


def _line_bars(line: np.ndarray, bars: int) -> np.ndarray:
    """Bars in which a melody-encoded line has a sounding note: bool [bars]."""
    sounding = np.zeros(len(line), dtype=bool)
    on = False
    for step, token in enumerate(line.tolist()):
        if token >= 2:
            on = True
        elif token == 1:
            on = False
        sounding[step] = on
    return sounding.reshape(bars, BAR_STEPS).any(axis=1)


def extract_trio_windows(score: Score, cfg: DataConfig) -> Extraction:
    """All trio windows of `score`, duplicates within the file removed, in order."""
    melodies = _tracks_in(score, cfg.programs or (0, 127), cfg)
    basses = _tracks_in(score, cfg.bass_programs, cfg)
    hits = drum_steps(score)
    missing = [
        name
        for name, present in (
            (f"melody track (programs {cfg.programs[0]}-{cfg.programs[1]})", melodies),
            (f"bass track (programs {cfg.bass_programs[0]}-{cfg.bass_programs[1]})", basses),
            ("drum track", hits),
        )
        if not present
    ]
    if missing:
        raise ExtractionError(score.path, "no trio", "no " + ", no ".join(missing))

    last = max([int(t.end.max()) for t in melodies + basses] + [max(hits) + 1])
    bars = -(-last // BAR_STEPS)
    steps = bars * BAR_STEPS
    drums = np.zeros(steps, dtype=np.int16)
    for step, token in hits.items():
        drums[step] = token
    gap_bars = cfg.gap_steps // BAR_STEPS
    drum_cover = covered_bars(drums.reshape(bars, BAR_STEPS).any(axis=1), gap_bars)
    bass_lines = [melody_line(t, cfg, steps) for t in basses]

    window_bars = cfg.window_steps // BAR_STEPS
    sequences = []
    for melody in melodies:
        line = melody_line(melody, cfg, steps)
        melody_cover = covered_bars(_line_bars(line, bars), gap_bars)
        for bass in bass_lines:
            cover = melody_cover & covered_bars(_line_bars(bass, bars), gap_bars) & drum_cover
            tokens = np.stack([line, bass, drums], axis=1)
            for first, end in _runs(cover):
                if end - first >= window_bars:
                    sequences.append(
                        (first * BAR_STEPS, tokens[first * BAR_STEPS : end * BAR_STEPS])
                    )
    if not sequences:
        raise ExtractionError(
            score.path,
            "too short",
            f"melody, bass and drums never all play for {window_bars} bars together",
        )
    return cut_windows(sequences, score, cfg)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[first, end) index pairs of the runs of True in a bool array."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def trio_notelists(
    window: np.ndarray, cfg: DataConfig, program: int = 0, velocity: int = 80
) -> list[NoteList]:
    """Melody (at `program`), bass (program 33) and drum-channel tracks of a trio window
    int [steps, 3], or of several joined in time."""
    window = np.asarray(window).reshape(-1, 3)
    melody = tokens_to_notelist(window[:, 0], cfg, program, velocity)
    bass = tokens_to_notelist(window[:, 1], cfg, BASS_PROGRAM, velocity)
    bass.name = "bass"
    return [melody, bass, drum_notelist(window[:, 2], velocity)]
