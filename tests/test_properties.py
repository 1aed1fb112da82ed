"""Property-based tests of the converters: round trips of valid token sequences through MIDI,
and any input either converting or raising the toolkit's own error.

Example counts are small so the file runs in seconds; benchmarks/fuzz_midi.py runs the same
kind of search for minutes.
"""

import tempfile
from pathlib import Path

import numpy as np
import pytest
import symusic
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicvae_py.configs import get_config
from musicvae_py.converters.drums import drum_notelist, drum_steps
from musicvae_py.converters.melody import NOTE_OFF, notes_to_tokens, tokens_to_notelist
from musicvae_py.converters.midi_bytes import chunk, header_chunk, track_body, vlq
from musicvae_py.converters.midi_io import read_midi, write_midi
from musicvae_py.converters.registry import get_converter
from musicvae_py.data.dataset import transpose_tokens
from musicvae_py.data.prepare import convert_file
from musicvae_py.errors import MidiReadError, MusicVAEError

MELODY = get_config("mel_2bar_tiny").data
KINDS = {
    "melody": MELODY,
    "drums": get_config("drums_2bar_tiny").data,
    "trio": get_config("trio_16bar_hierdec_tiny").data,
}
FAST = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


@st.composite
def melody_tokens(draw, steps: int, max_rest: int = 40, first_rest: int = 40) -> np.ndarray:
    """A valid melody token sequence of `steps` steps: notes (a note-on, then holds) and rests
    (a note-off after a sounding note, then silence). Rests are at most `max_rest` steps, the
    opening one at most `first_rest`."""
    tokens: list[int] = []
    sounding = False
    rest = draw(st.integers(0, first_rest))
    tokens += [0] * rest
    while len(tokens) < steps:
        if sounding and draw(st.booleans()):
            rest = draw(st.integers(1, max_rest))
            tokens += [NOTE_OFF] + [0] * (rest - 1)
            sounding = False
        pitch_token = draw(st.integers(2, MELODY.melody_classes - 1))
        tokens += [pitch_token] + [0] * (draw(st.integers(1, 20)) - 1)
        sounding = True
    return np.asarray(tokens[:steps], dtype=np.int16)


def midi_notes(path: Path) -> list[tuple[int, int, int]]:
    score = read_midi(path)
    assert len(score.tracks) <= 1
    if not score.tracks:
        return []
    t = score.tracks[0]
    return list(zip(t.pitch.tolist(), t.start.tolist(), t.end.tolist(), strict=True))


@FAST
@given(st.integers(1, 96).flatmap(lambda n: melody_tokens(n)))
def test_melody_tokens_survive_a_trip_through_midi(folder, tokens):
    path = folder / "melody.mid"
    write_midi(path, [tokens_to_notelist(tokens, MELODY)])
    again = notes_to_tokens(midi_notes(path), len(tokens), MELODY.min_pitch)
    np.testing.assert_array_equal(again, tokens)


def _last_note_end(tokens: np.ndarray) -> int:
    """The step where the last note stops: its note-off, or the window's end."""
    events = np.flatnonzero(tokens)
    return int(events[-1]) if tokens[events[-1]] == NOTE_OFF else len(tokens)


@FAST
@given(melody_tokens(32, max_rest=MELODY.gap_steps - 1, first_rest=15))
def test_a_two_bar_melody_file_gives_back_its_window(folder, tokens):
    # Extraction starts a melody at the bar of its first note and ends it at its last note,
    # so a melody that opens in the first bar, never rests a whole bar and sounds past the
    # bar line after step 16 is exactly one window.
    if _last_note_end(tokens) <= 16:
        tokens = tokens.copy()
        tokens[16:] = 0
        tokens[16] = 50  # a note from the second bar to the end
    path = folder / "window.mid"
    write_midi(path, [tokens_to_notelist(tokens, MELODY)])
    result = convert_file(str(path), MELODY)
    assert result.windows is not None, result.reason
    np.testing.assert_array_equal(result.windows, tokens[None])
    assert result.meters == ["4/4"] and result.starts == [0]


@FAST
@given(st.lists(st.integers(0, 511), min_size=1, max_size=64))
def test_drum_tokens_survive_a_trip_through_midi(folder, tokens):
    path = folder / "drums.mid"
    write_midi(path, [drum_notelist(np.asarray(tokens))])
    hits = drum_steps(read_midi(path))
    again = [hits.get(step, 0) for step in range(len(tokens))]
    assert again == tokens


@FAST
@given(
    st.lists(
        st.lists(st.integers(0, MELODY.melody_classes - 1), min_size=32, max_size=32),
        min_size=1,
        max_size=8,
    ),
    st.integers(0, 12),
    st.integers(0, 2**31),
)
def test_transposition_never_leaves_the_pitch_range(rows, max_shift, seed):
    tokens = torch.tensor(rows)
    shifted = transpose_tokens(
        tokens, max_shift, MELODY.melody_classes, torch.Generator().manual_seed(seed)
    )
    assert shifted.min() >= 0 and shifted.max() < MELODY.melody_classes
    is_pitch = tokens >= 2
    assert torch.equal(shifted[~is_pitch], tokens[~is_pitch])
    for row, moved, pitch in zip(tokens, shifted, is_pitch, strict=True):
        shifts = (moved - row)[pitch].unique()
        assert len(shifts) <= 1 and (not len(shifts) or abs(int(shifts[0])) <= max_shift)


def convert_or_refuse(path: Path) -> None:
    """Read and extract `path` with every converter: each step either gives well-formed
    windows or raises the toolkit's own error."""
    try:
        score = read_midi(path)
    except MidiReadError:
        return
    for cfg in KINDS.values():
        try:
            extraction = get_converter(cfg.kind).extract(score, cfg)
        except MusicVAEError:
            continue
        windows = extraction.windows
        assert windows.shape[1:] == cfg.window_shape
        assert len(extraction.meters) == len(extraction.starts) == len(windows)
        assert not len(windows) or (windows.min() >= 0 and cfg.window_problem(windows) is None)


def _good_file() -> bytes:
    score = symusic.Score(480)
    track = symusic.Track("", 0, False)
    for step in range(0, 64, 2):
        track.notes.append(symusic.Note(step * 120, 240, 60 + step % 12, 90))
    score.tracks.append(track)
    return bytes(score.dumps_midi())


GOOD = _good_file()


def _mutate(edits: list[tuple[float, bytes]], cut: float) -> bytes:
    data = bytearray(GOOD)
    for where, payload in edits:
        at = int(where * (len(data) - 1))
        data[at : at + len(payload)] = payload
    return bytes(data[: max(1, int(cut * len(data)))])


def _raw_file(division: int, events: list[tuple[int, bytes]]) -> bytes:
    header = header_chunk(1, division, midi_format=0)
    return header + chunk(b"MTrk", track_body(events))


def _note(channel: int, pitch: int, velocity: int, duration: int) -> bytes:
    on, off = bytes([0x90 | channel, pitch, velocity]), bytes([0x80 | channel, pitch, 0])
    return on + vlq(duration) + off


# One track of notes, tempo and time-signature events (any field value).
RAW_EVENT = st.one_of(
    st.builds(
        _note, st.integers(0, 15), st.integers(30, 100), st.integers(1, 127), st.integers(0, 4000)
    ),
    st.binary(min_size=3, max_size=3).map(lambda b: b"\xff\x51\x03" + b),
    st.binary(min_size=4, max_size=4).map(lambda b: b"\xff\x58\x04" + b),
)
RAW_FILES = st.builds(
    _raw_file,
    st.integers(1, 0x7FFF),
    st.lists(st.tuples(st.integers(0, 2000), RAW_EVENT), max_size=40),
)

ANY_BYTES = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=300).map(lambda b: b"MThd\x00\x00\x00\x06" + b),
    RAW_FILES,
    st.builds(
        _mutate,
        st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=4)), max_size=4),
        st.floats(0, 1),
    ),
)


@FAST
@given(ANY_BYTES)
def test_any_bytes_convert_or_raise_the_toolkits_error(folder, data):
    path = folder / "bytes.mid"
    path.write_bytes(data)
    convert_or_refuse(path)


NOTE = st.tuples(
    st.integers(0, 2**20),  # onset, ticks
    st.integers(-100, 2**16),  # duration, ticks (negative ones included)
    st.integers(0, 127),
    st.integers(1, 127),
)
TRACK = st.tuples(st.integers(0, 127), st.booleans(), st.lists(NOTE, max_size=30))


@FAST
@given(
    st.sampled_from([1, 3, 96, 480, 32767]),
    st.lists(TRACK, max_size=4),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 16), st.integers(0, 64)), max_size=3),
)
def test_any_notes_convert_or_raise_the_toolkits_error(folder, tpq, tracks, signatures):
    score = symusic.Score(tpq)
    for at, numerator, denominator in signatures:
        score.time_signatures.append(symusic.TimeSignature(at, numerator, denominator))
    for program, is_drum, notes in tracks:
        track = symusic.Track("", program, is_drum)
        for onset, duration, pitch, velocity in notes:
            track.notes.append(symusic.Note(onset, duration, pitch, velocity))
        score.tracks.append(track)
    path = folder / "notes.mid"
    path.write_bytes(bytes(score.dumps_midi()))
    convert_or_refuse(path)
