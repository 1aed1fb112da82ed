import numpy as np
import pytest
import torch

from musicvae_py.configs import DataConfig
from musicvae_py.converters.melody import (
    NOTE_OFF,
    extract_track_melodies,
    extract_windows,
    notes_to_tokens,
    pitch_to_token,
    tokens_to_notelist,
    tokens_to_notes,
)
from musicvae_py.converters.midi_io import NoteList, read_midi, write_midi
from musicvae_py.data.dataset import transpose_tokens
from tests.conftest import phrase, write_score

CFG = DataConfig()


def melodies_of(path, cfg=CFG):
    score = read_midi(path)
    return [m for t in score.tracks for m in extract_track_melodies(t, score, cfg)]


def test_round_trip_keeps_every_grid_note(tmp_path):
    rng = np.random.default_rng(0)
    notes, step = [], 0
    for _ in range(40):
        step += int(rng.integers(0, 3))  # some rests, shorter than the melody-ending gap
        length = int(rng.integers(1, 9))
        notes.append((int(rng.integers(21, 109)), step, step + length))
        step += length
    path = tmp_path / "line.mid"
    write_midi(path, [NoteList(notes)])
    (melody,) = melodies_of(path)
    assert tokens_to_notes(melody.tokens, offset=melody.start_step) == notes

    # and back: tokens -> MIDI -> tokens
    again = tmp_path / "again.mid"
    write_midi(again, [tokens_to_notelist(melody.tokens, CFG)])
    (reread,) = melodies_of(again)
    assert reread.tokens.tolist() == melody.tokens.tolist()


def test_pitch_range_ends_and_outside_notes(tmp_path):
    assert pitch_to_token(21) == 2 and pitch_to_token(108) == 89
    path = write_score(
        tmp_path / "range.mid", [{"notes": [(20, 0, 2), (21, 2, 4), (108, 4, 6), (109, 6, 8)]}]
    )
    (melody,) = melodies_of(path)
    assert melody.tokens[:8].tolist() == [0, 0, 2, 0, 89, 0, 1, 0]


def test_a_melody_ending_on_a_bar_line_needs_no_extra_bar(tmp_path):
    path = write_score(tmp_path / "two.mid", [{"notes": [(60, 0, 16), (62, 16, 32)]}])
    (melody,) = melodies_of(path)
    assert len(melody.tokens) == 32
    assert tokens_to_notes(melody.tokens) == [(60, 0, 16), (62, 16, 32)]


def test_rests_are_note_off_then_no_event(tmp_path):
    path = write_score(tmp_path / "rest.mid", [{"notes": [(60, 0, 2), (62, 6, 8)]}])
    (melody,) = melodies_of(path)
    p60, p62 = pitch_to_token(60), pitch_to_token(62)
    assert melody.tokens[:9].tolist() == [p60, 0, NOTE_OFF, 0, 0, 0, p62, 0, NOTE_OFF]
    assert len(melody.tokens) == 16  # padded to a whole bar


def test_highest_note_wins_and_new_onset_cuts_previous(tmp_path):
    chord_then_overlap = [(60, 0, 4), (67, 0, 4), (64, 0, 4), (62, 2, 6)]
    path = write_score(tmp_path / "poly.mid", [{"notes": chord_then_overlap}])
    (melody,) = melodies_of(path)
    assert tokens_to_notes(melody.tokens) == [(67, 0, 2), (62, 2, 6)]


def test_a_short_note_inside_a_long_one_leaves_no_stray_note_off(tmp_path):
    # 62 starts inside 60 and ends before it: 60 ends at 62's onset, and nothing sounds after
    # 62 ends until 64, so no note-off of 60 may stand at step 8
    notes = [(60, 0, 8), (62, 2, 4), (64, 16, 32)]
    path = write_score(tmp_path / "inside.mid", [{"notes": notes}])
    (melody,) = melodies_of(path)
    assert melody.tokens[:5].tolist() == [pitch_to_token(60), 0, pitch_to_token(62), 0, NOTE_OFF]
    assert melody.tokens[5:16].tolist() == [0] * 11
    assert tokens_to_notes(melody.tokens) == [(60, 0, 2), (62, 2, 4), (64, 16, 32)]
    assert notes_to_tokens(notes, 32).tolist() == melody.tokens.tolist()


def test_gap_of_a_bar_ends_a_melody(tmp_path):
    notes = phrase(2) + phrase(2, offset=64)  # 32 silent steps between the phrases
    path = write_score(tmp_path / "gap.mid", [{"notes": notes}])
    melodies = melodies_of(path)
    assert [m.start_step for m in melodies] == [0, 64]


def test_windows_hop_a_bar_and_ties_cross_windows(tmp_path):
    notes = [(60, 0, 8), (62, 8, 24), (64, 24, 40), (65, 40, 48)]  # 62 spans steps 8..24
    path = write_score(tmp_path / "tie.mid", [{"notes": notes}])
    extraction = extract_windows(read_midi(path), CFG)
    assert extraction.starts == [0, 16]
    second = extraction.windows[1]
    assert second[:8].tolist() == [0] * 8  # the tied note continues: no event
    assert second[8] == pitch_to_token(64)


def test_other_meters_yield_windows_and_are_counted(tmp_path):
    for num, den in [(2, 4), (3, 4), (2, 2), (6, 8)]:
        path = write_score(
            tmp_path / f"m{num}{den}.mid", [{"notes": phrase(4)}], time_signatures=[(0, num, den)]
        )
        extraction = extract_windows(read_midi(path), CFG)
        assert len(extraction.windows) >= 2
        assert set(extraction.meters) == {f"{num}/{den}"}


def test_program_filter_and_drums(tmp_path):
    path = write_score(
        tmp_path / "prog.mid",
        [
            {"notes": phrase(4), "program": 40},
            {"notes": [(36, i, i + 1) for i in range(0, 64, 4)], "is_drum": True},
        ],
    )
    assert len(extract_windows(read_midi(path), CFG).windows) == 0
    all_programs = DataConfig(programs=None)
    assert len(extract_windows(read_midi(path), all_programs).windows) > 0


def test_duplicate_windows_within_a_file_are_dropped(tmp_path):
    path = write_score(
        tmp_path / "rep.mid",
        [{"notes": phrase(1) + phrase(1, offset=16) + phrase(1, offset=32) + phrase(1, offset=48)}],
    )
    extraction = extract_windows(read_midi(path), CFG)
    # the windows at 16 and 32 repeat the one at 0
    assert extraction.starts == [0]


def test_notes_to_tokens_inverts_decoding():
    tokens = np.array([2, 0, 1, 0, 50, 0, 0, 60, 0, 0, 0, 1, 0, 0, 0, 0])
    notes = tokens_to_notes(tokens)
    assert notes_to_tokens(notes, 16).tolist() == tokens.tolist()


def test_transposition_stays_in_range_and_moves_only_pitches():
    tokens = torch.tensor([[2, 0, 1, 10, 0], [89, 1, 0, 0, 0], [0, 1, 0, 0, 0]])
    g = torch.Generator().manual_seed(0)
    shifted = [transpose_tokens(tokens, 5, 90, g) for _ in range(50)]
    for out in shifted:
        assert out[0, 0] >= 2 and out[1, 0] <= 89
        assert out[:, 1:3].tolist() == tokens[:, 1:3].tolist()  # holds and offs untouched
        assert out[2].tolist() == tokens[2].tolist()
        assert out[0, 3] - out[0, 0] == 8  # intervals kept
    assert len({int(o[0, 0]) for o in shifted}) > 1


@pytest.mark.parametrize("steps", [1, 7])
def test_decoding_ends_notes_at_sequence_end(steps):
    tokens = np.zeros(steps, dtype=int)
    tokens[0] = pitch_to_token(60)
    assert tokens_to_notes(tokens) == [(60, 0, steps)]
