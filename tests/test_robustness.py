"""Robustness: malformed and odd MIDI, interrupted and failing runs, outputs and safe loading.

The bad-input corpus is written by the tests, byte by byte where the oddity cannot be made
with a MIDI library. Long checks (fuzzing for minutes, a 50 MB file) are scripts under
benchmarks/.
"""

import errno
import importlib.util
import io
import json
import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from musicvae_py.configs import get_config
from musicvae_py.converters.midi_bytes import chunk, header_chunk, track_body
from musicvae_py.converters.midi_io import (
    MAX_FILE_BYTES,
    MAX_STEPS,
    NoteList,
    read_midi,
    write_midi,
)
from musicvae_py.data.dataset import load_dataset
from musicvae_py.data.prepare import SKIP_REASONS, convert_file, prepare_dataset
from musicvae_py.errors import CheckpointError, DatasetError, MidiReadError, MusicVAEError
from musicvae_py.fileio import removed_if_left_empty
from musicvae_py.training.checkpoint import (
    CONFIG,
    LATEST,
    OPTIMIZER,
    TRAINER,
    WEIGHTS,
    load_model,
    load_optimizer_state,
    load_trainer_state,
    read_checkpoint,
    resolve_checkpoint,
)
from musicvae_py.training.trainer import (
    Trainer,
    TrainingError,
    TrainingStopped,
    TrainOptions,
)
from tests.conftest import run

TINY = get_config("mel_2bar_tiny")
AS_ROOT = os.geteuid() == 0
PYTHON_CLI = [sys.executable, "-c", "from musicvae_py.cli.main import main; main()"]


# ---------------------------------------------------------------------------------------------
# MIDI written byte by byte


def track_chunk(events: list[tuple[int, int, bytes]]) -> bytes:
    """An MTrk chunk from (tick, order, event bytes); events are sorted by tick, then order."""
    deltas, now = [], 0
    for tick, _, event in sorted(events, key=lambda e: (e[0], e[1])):
        deltas.append((tick - now, event))
        now = tick
    return chunk(b"MTrk", track_body(deltas))


def smf(tracks: list[bytes], tpq: int = 480, declared: int | None = None) -> bytes:
    """A format-1 standard MIDI file; `declared` overrides the header's track count."""
    return header_chunk(len(tracks) if declared is None else declared, tpq) + b"".join(tracks)


def note_events(
    notes: list[tuple[int, int, int]], ticks_per_step: int = 120, channel: int = 0
) -> list[tuple[int, int, bytes]]:
    """Note on and off events of (pitch, start step, end step) notes. At one tick, note offs
    come first; a zero-length note's on comes right before its own off."""
    events = []
    for pitch, start, end in notes:
        on, off = bytes([0x90 | channel, pitch, 90]), bytes([0x80 | channel, pitch, 0])
        zero = start == end
        events.append((start * ticks_per_step, 1 if zero else 3, on))
        events.append((end * ticks_per_step, 2 if zero else 0, off))
    return events


def tempo(microseconds_per_quarter: int, tick: int = 0) -> tuple[int, int, bytes]:
    return (tick, 0, b"\xff\x51\x03" + microseconds_per_quarter.to_bytes(3, "big"))


def time_signature(numerator: int, denominator_power: int, tick: int = 0):
    return (tick, 0, b"\xff\x58\x04" + bytes([numerator, denominator_power, 24, 8]))


def melody(file: int, bars: int, offset: int = 0) -> list[tuple[int, int, int]]:
    """Four quarter notes a bar whose every 2-bar window is unique within the corpus: a bar's
    first pitch counts the bars, the other three name the file."""
    notes = []
    for bar in range(bars):
        start = offset + 16 * bar
        pitches = (40 + bar, 60 + file, 62 + file, 64 + file)
        notes += [(p, start + 4 * i, start + 4 * i + 4) for i, p in enumerate(pitches)]
    return notes


def melody_file(file: int, bars: int = 4) -> bytes:
    return smf([track_chunk(note_events(melody(file, bars)))])


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def odd_but_usable() -> dict[str, tuple[bytes, bytes, int]]:
    """Odd files that still hold music: name -> (the file, a clean twin that must give the
    same windows, the number of windows)."""
    files = {}

    notes = melody(3, 4)
    one_step = [(p, s, s + 1) for p, s, _ in notes]
    zero = smf([track_chunk(note_events([(p, s, s) for p, s, _ in notes]))])
    files["zero_length.mid"] = (zero, smf([track_chunk(note_events(one_step))]), 3)

    # a note whose off comes before its on: the off closes nothing, the on is never closed,
    # and the note is dropped
    backwards = [(40 * 120, 0, bytes([0x80, 100, 0])), (42 * 120, 3, bytes([0x90, 100, 90]))]
    negative = smf([track_chunk(note_events(melody(4, 4)) + backwards)])
    files["negative_length.mid"] = (negative, melody_file(4), 3)

    zero_tempo = smf([track_chunk([tempo(0)] + note_events(melody(5, 4)))])
    files["tempo_zero.mid"] = (zero_tempo, melody_file(5), 3)
    absurd = [tempo(1), tempo(0xFFFFFF, 16 * 120), tempo(1, 32 * 120)]
    files["tempo_absurd.mid"] = (
        smf([track_chunk(absurd + note_events(melody(6, 4)))]),
        melody_file(6),
        3,
    )

    # 2,999 tracks of one note each (a one-bar melody, too short) beside the real melody
    singles = [
        track_chunk(note_events([(90, 4 * (i % 16), 4 * (i % 16) + 2)])) for i in range(2999)
    ]
    many = smf([track_chunk(note_events(melody(7, 4)))] + singles)
    files["thousands_of_tracks.mid"] = (many, melody_file(7), 3)

    edges = []
    for bar in range(4):
        pitches = (40 + bar, 21, 108, 68)  # the lowest and highest pitch the melody keeps
        edges += [(p, 16 * bar + 4 * i, 16 * bar + 4 * i + 4) for i, p in enumerate(pitches)]
    edge_file = smf([track_chunk(note_events(edges))])
    files["range_edges.mid"] = (edge_file, edge_file, 3)

    # each note struck again while it sounds: a new onset ends the note before it
    struck, twin = [], []
    for p, s, e in melody(9, 4):
        struck += [(s * 120, 3, bytes([0x90, p, 90])), (s * 120 + 240, 3, bytes([0x90, p, 90]))]
        struck += [(e * 120, 0, bytes([0x80, p, 0]))] * 2
        twin += [(p, s, s + 2), (p, s + 2, e)]
    overlapping = smf([track_chunk(struck)])
    files["overlapping_same_pitch.mid"] = (overlapping, smf([track_chunk(note_events(twin))]), 3)

    # a new time signature on every bar: 4/4, 3/4, 6/8, 2/4, ...; quarter notes fill each bar
    meters = [(4, 2, 16), (3, 2, 12), (6, 3, 12), (2, 2, 8)] * 2
    signatures, metered, start = [], [], 0
    for bar, (numerator, power, steps) in enumerate(meters):
        signatures.append(time_signature(numerator, power, start * 120))
        pitches = [40 + bar] + [60 + 10 + i for i in range(steps // 4 - 1)]
        metered += [(p, start + 4 * i, start + 4 * i + 4) for i, p in enumerate(pitches)]
        start += steps
    every_bar = smf([track_chunk(signatures + note_events(metered))])
    plain = smf([track_chunk(note_events(metered))])
    files["meter_every_bar.mid"] = (every_bar, plain, start // 16 - 1)

    broken_meter = [time_signature(4, 31), time_signature(0, 2, 32 * 120)]
    files["bad_time_signature.mid"] = (
        smf([track_chunk(broken_meter + note_events(melody(10, 4)))]),
        melody_file(10),
        3,
    )

    # one tick per step: a note at step 2**27 lies past MAX_STEPS and is dropped
    far = note_events(melody(11, 4), ticks_per_step=1) + note_events([(70, 2**27, 2**27 + 4)], 1)
    files["far_note.mid"] = (
        smf([track_chunk(far)], tpq=4),
        smf([track_chunk(note_events(melody(11, 4), 1))], tpq=4),
        3,
    )

    # a note held for 2**27 steps ends at MAX_STEPS; the melody is cut to 100 bars, whose
    # windows are the opening one and one of the held note (the rest are its duplicates)
    endless = smf([track_chunk(note_events([(72, 0, 2**27)], 1))], tpq=4)
    held = smf([track_chunk(note_events([(72, 0, MAX_STEPS)], 1))], tpq=4)
    files["endless_note.mid"] = (endless, held, 2)
    return files


def unusable() -> dict[str, tuple[bytes, str]]:
    """Files that hold nothing a melody config can use: name -> (the file, its reason)."""
    good = melody_file(12)
    drums = note_events([(36 + i % 3, 4 * i, 4 * i + 1) for i in range(16)], channel=9)
    bends = [(60 * i, 0, bytes([0xE0, i % 128, 64])) for i in range(200)]
    out_of_range = [(p, 2 * i, 2 * i + 2) for i, p in enumerate([0, 5, 20, 109, 120, 127] * 8)]
    return {
        "one_bar.mid": (melody_file(12, bars=1), "too short"),
        "drums_only.mid": (smf([track_chunk(drums)]), "no melody"),
        "pitch_bends_only.mid": (smf([track_chunk(bends)]), "no notes"),
        "out_of_range.mid": (smf([track_chunk(note_events(out_of_range))]), "no melody"),
        "zero_tracks.mid": (smf([], declared=0), "no notes"),
        "truncated_header.mid": (good[:14], "unreadable"),
        "truncated_body.mid": (good[: len(good) // 2], "unreadable"),
        "missing_tracks.mid": (
            smf([track_chunk(note_events(melody(13, 4)))], declared=3),
            "unreadable",
        ),
        "wrong_header.mid": (b"MThx" + good[4:], "unreadable"),
        "text.mid": (b"C D E F G A B c\nthis is an abc tune, not MIDI\n", "unreadable"),
        "picture.mid": (png_bytes(), "unreadable"),
        "empty.mid": (b"", "unreadable"),
    }


def write_corpus(folder: Path) -> dict[str, int | str]:
    """Write the bad-input corpus; returns file name -> windows it must give, or its reason.

    Besides the files above: a 65 MiB sparse file, a FIFO, a dangling link, a folder link
    loop and a second link to a subfolder (whose file must be counted once)."""
    folder.mkdir(parents=True)
    expected: dict[str, int | str] = {}
    for name, (data, _, windows) in odd_but_usable().items():
        (folder / name).write_bytes(data)
        expected[name] = windows
    for name, (data, reason) in unusable().items():
        (folder / name).write_bytes(data)
        expected[name] = reason
    for f in range(3):
        (folder / f"good{f}.mid").write_bytes(melody_file(f))
        expected[f"good{f}.mid"] = 3

    with open(folder / "huge.mid", "wb") as f:
        f.truncate(65 * 2**20)  # sparse: takes no disk space
    expected["huge.mid"] = "too large"
    os.mkfifo(folder / "fifo.mid")
    expected["fifo.mid"] = "unreadable"
    (folder / "dangling.mid").symlink_to(folder / "nowhere.mid")
    expected["dangling.mid"] = "unreadable"

    (folder / "sub").mkdir()
    (folder / "sub" / "nested.mid").write_bytes(melody_file(14))
    expected["sub/nested.mid"] = 3
    (folder / "loop").symlink_to(folder)  # a folder that contains itself
    (folder / "sub" / "back").symlink_to("..")
    (folder / "alias").symlink_to(folder / "sub")  # sub/nested.mid a second time
    return expected


def cli(*args, ok: bool = False):
    """`musicvae ARGS`, expected to fail unless `ok`."""
    return run(*args, ok=ok)


def assert_one_line_error(result, *needles: str) -> str:
    """The command failed with exit status 1 and one line of output holding every needle."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, int | str]]:
    folder = tmp_path_factory.mktemp("bad") / "corpus"
    return folder, write_corpus(folder)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small clean dataset: five 6-bar melodies, 25 windows."""
    root = tmp_path_factory.mktemp("clean")
    (root / "midi").mkdir()
    for f in range(5):
        (root / "midi" / f"m{f}.mid").write_bytes(melody_file(20 + f, bars=6))
    prepare_dataset([root / "midi"], root / "ds", TINY.data, valid_fraction=0.2, workers=1)
    return load_dataset(root / "ds")


def options(steps: int, **changes) -> TrainOptions:
    values = dict(
        num_steps=steps,
        seed=5,
        log_every=1000,
        eval_every=1000,
        checkpoint_every=2,
        eval_windows=8,
        keep_checkpoints=2,
    )
    values.update(changes)
    return TrainOptions(**values)


def quiet(message: str) -> None:
    pass


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory) -> Trainer:
    """An uninterrupted 8-step run: what every interrupted and resumed run must reach."""
    trainer = Trainer(
        TINY, dataset, tmp_path_factory.mktemp("ref") / "run", options(8), report=quiet
    )
    trainer.run()
    return trainer


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> dict[str, Path]:
    """A tiny trained run and the dataset folder, for the single-file commands."""
    root = tmp_path_factory.mktemp("trained")
    Trainer(TINY, dataset, root / "run", options(4), report=quiet).run()
    good = root / "good.mid"
    good.write_bytes(melody_file(30, bars=2))
    return {"run": root / "run", "ds": dataset.path, "good": good, "root": root}


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def optimizer_tensors(state: dict) -> list[torch.Tensor]:
    return [v for s in state["state"].values() for v in s.values() if torch.is_tensor(v)]


# ---------------------------------------------------------------------------------------------
# bad input


def test_prepare_over_the_bad_corpus_counts_every_file(corpus, tmp_path):
    folder, expected = corpus
    report = prepare_dataset([folder], tmp_path / "ds", TINY.data, valid_fraction=0.3, workers=1)

    reasons = Counter(v for v in expected.values() if isinstance(v, str))
    good = {name: n for name, n in expected.items() if isinstance(n, int)}
    assert report.files_found == len(expected)
    assert report.files_skipped == dict(reasons)
    assert set(report.files_skipped) <= set(SKIP_REASONS)
    assert report.files_read == len(good)
    assert sum(report.windows_kept.values()) == sum(good.values())
    assert report.duplicates_dropped == 0

    meta = load_dataset(tmp_path / "ds").meta
    kept_files = meta["splits"]["train"]["files"] + meta["splits"]["valid"]["files"]
    assert sorted(Path(f).relative_to(folder).as_posix() for f in kept_files) == sorted(good)
    for name, outcome in expected.items():
        result = convert_file(str(folder / name), TINY.data)
        if isinstance(outcome, str):
            assert result.windows is None and result.reason == outcome, (name, result.detail)
        else:
            assert result.windows is not None and len(result.windows) == outcome, name


def test_prepare_command_in_parallel_reports_the_same(corpus, tmp_path):
    folder, expected = corpus
    options = "--config mel_2bar_tiny --workers 2".split()
    result = cli("prepare", folder, "--out", tmp_path / "ds", *options, ok=True)
    good = [n for n in expected.values() if isinstance(n, int)]
    assert f"files read:          {len(good)} of {len(expected)}" in result.output
    for reason, count in Counter(v for v in expected.values() if isinstance(v, str)).items():
        assert f"  {reason:<17}  {count}   e.g. " in result.output
    windows = json.loads((tmp_path / "ds" / "meta.json").read_text())["report"]["windows_kept"]
    assert sum(windows.values()) == sum(good)


@pytest.mark.parametrize("name", sorted(odd_but_usable()))
def test_odd_files_give_the_windows_of_their_clean_twin(name, tmp_path):
    odd, twin, windows = odd_but_usable()[name]
    (tmp_path / "odd.mid").write_bytes(odd)
    (tmp_path / "twin.mid").write_bytes(twin)
    got = convert_file(str(tmp_path / "odd.mid"), TINY.data)
    want = convert_file(str(tmp_path / "twin.mid"), TINY.data)
    assert got.windows is not None and len(got.windows) == windows, got.reason
    assert np.array_equal(got.windows, want.windows)


def test_odd_tempi_and_meters_read_as_plain_values(corpus):
    folder, _ = corpus
    assert read_midi(folder / "tempo_zero.mid").qpm == 120.0  # tempo 0 would be infinite
    assert read_midi(folder / "bad_time_signature.mid").time_signatures == []
    meters = set(convert_file(str(folder / "meter_every_bar.mid"), TINY.data).meters)
    assert {"4/4", "3/4", "6/8", "2/4"} >= meters and len(meters) >= 3


def test_a_file_without_read_permission_is_counted(tmp_path):
    locked = tmp_path / "locked.mid"
    locked.write_bytes(melody_file(0))
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running as root: a file without read permission stays readable")
        result = convert_file(str(locked), TINY.data)
        assert result.reason == "unreadable" and "Permission denied" in result.detail
    finally:
        locked.chmod(0o644)


def test_a_file_over_the_size_limit_names_its_size_and_the_limit(tmp_path):
    path = tmp_path / "huge.mid"
    for size, shown in ((MAX_FILE_BYTES + 1, "64.0 MiB"), (70 * 2**20, "70.0 MiB")):
        with open(path, "wb") as f:
            f.truncate(size)  # sparse: takes no disk space
        with pytest.raises(MidiReadError) as caught:
            read_midi(path)
        assert caught.value.reason == "too large"  # the name prepare counts it under
        assert caught.value.detail == f"{shown}, over the 64 MiB limit"


def test_the_big_midi_benchmark_builds_files_the_reader_reads(tmp_path):
    script = Path(__file__).parents[1] / "benchmarks" / "big_midi.py"
    spec = importlib.util.spec_from_file_location("big_midi", script)
    big_midi = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(big_midi)
    data, steps = big_midi.big_midi(20_000, tracks=2, chord=3, phrase_bars=4, seed=0)
    path = tmp_path / "big.mid"
    path.write_bytes(data)
    score = read_midi(path)
    assert sum(len(t) for t in score.tracks) == 2 * 3 * steps
    assert score.qpm == pytest.approx(120)


def test_a_converter_failure_is_counted_and_the_job_goes_on(tmp_path, monkeypatch):
    from musicvae_py.converters import registry

    (tmp_path / "midi").mkdir()
    for f in range(3):
        (tmp_path / "midi" / f"m{f}.mid").write_bytes(melody_file(f))
    real = registry.CONVERTERS["melody"]

    def extract(score, cfg):
        if score.path.endswith("m1.mid"):
            raise RuntimeError("a converter bug")
        return real.extract(score, cfg)

    monkeypatch.setitem(registry.CONVERTERS, "melody", registry.Converter(extract, real.tracks))
    report = prepare_dataset([tmp_path / "midi"], tmp_path / "ds", TINY.data, workers=1)
    assert report.files_skipped == {"error": 1} and report.files_read == 2
    assert "RuntimeError: a converter bug" in report.skipped_examples["error"][0]


SINGLE_FILE_CASES = sorted(unusable()) + ["huge.mid", "fifo.mid", "dangling.mid"]


@pytest.mark.parametrize("name", SINGLE_FILE_CASES)
def test_single_file_commands_answer_bad_input_in_one_line(name, corpus, trained, tmp_path):
    folder, expected = corpus
    bad, run = folder / name, trained["run"]
    for args in (
        ["encode", bad, "--model", run],
        ["reconstruct", bad, "--model", run, "--out", tmp_path / "r.mid"],
        ["interpolate", bad, trained["good"], "--model", run, "--out", tmp_path / "i"],
    ):
        assert_one_line_error(cli(*args), str(bad), expected[name])
    assert list(tmp_path.iterdir()) == []


def test_single_file_commands_name_missing_and_folder_inputs(trained, tmp_path):
    missing = tmp_path / "missing.mid"
    line = assert_one_line_error(cli("encode", missing, "--model", trained["run"]), str(missing))
    assert "unreadable (No such file or directory)" in line
    line = assert_one_line_error(cli("encode", tmp_path, "--model", trained["run"]), str(tmp_path))
    assert "unreadable (Is a directory)" in line


def test_debug_shows_the_traceback(corpus, trained):
    folder, _ = corpus
    bad = folder / "text.mid"
    plain = subprocess.run(
        [*PYTHON_CLI, "encode", str(bad), "--model", str(trained["run"])],
        capture_output=True,
        text=True,
    )
    assert plain.returncode == 1 and plain.stdout == ""
    assert plain.stderr.strip().splitlines() == [
        f"error: {bad}: unreadable (not a MIDI file, no MThd header)"
    ]
    debug = subprocess.run(
        [*PYTHON_CLI, "--debug", "encode", str(bad), "--model", str(trained["run"])],
        capture_output=True,
        text=True,
    )
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "MidiReadError" in debug.stderr


# ---------------------------------------------------------------------------------------------
# checkpoints refused


def _drop_tensor(ckpt: Path) -> None:
    weights = load_file(ckpt / WEIGHTS)
    weights.pop(sorted(weights)[0])
    save_file(weights, ckpt / WEIGHTS)


def _extra_tensor(ckpt: Path) -> None:
    weights = load_file(ckpt / WEIGHTS)
    weights["stray.weight"] = torch.zeros(2)
    save_file(weights, ckpt / WEIGHTS)


def _reshape_tensor(ckpt: Path) -> None:
    weights = load_file(ckpt / WEIGHTS)
    name = sorted(weights)[0]
    weights[name] = torch.zeros(*weights[name].shape[:-1], weights[name].shape[-1] + 1)
    save_file(weights, ckpt / WEIGHTS)


def _nan_tensor(ckpt: Path) -> None:
    weights = load_file(ckpt / WEIGHTS)
    weights[sorted(weights)[-1]][0] = float("nan")
    save_file(weights, ckpt / WEIGHTS)


def _truncate(name: str):
    def corrupt(ckpt: Path) -> None:
        data = (ckpt / name).read_bytes()
        (ckpt / name).write_bytes(data[: len(data) // 2])

    return corrupt


def _unknown_config_field(ckpt: Path) -> None:
    meta = json.loads((ckpt / CONFIG).read_text())
    meta["config"]["model"]["hidden_layers"] = 7
    (ckpt / CONFIG).write_text(json.dumps(meta))


def _bigger_z(ckpt: Path) -> None:
    meta = json.loads((ckpt / CONFIG).read_text())
    meta["config"]["model"]["z_size"] = 9
    (ckpt / CONFIG).write_text(json.dumps(meta))


def _foreign_optimizer(ckpt: Path) -> None:
    other = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(other.parameters())
    other(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    torch.save(optimizer.state_dict(), ckpt / OPTIMIZER)


def _reshaped_optimizer(ckpt: Path) -> None:
    state = torch.load(ckpt / OPTIMIZER, weights_only=True)
    first = state["state"][0]
    first["exp_avg"] = torch.zeros(first["exp_avg"].numel() + 1)
    torch.save(state, ckpt / OPTIMIZER)


def _trainer_without_step(ckpt: Path) -> None:
    (ckpt / TRAINER).write_text(json.dumps({"seed": 5}))


def _latest_names_a_missing_folder(ckpt: Path) -> None:
    (ckpt.parent / LATEST).write_text(json.dumps({"checkpoint": "ckpt-99999999", "step": 9}))


def _latest_malformed(ckpt: Path) -> None:
    (ckpt.parent / LATEST).write_text('{"checkpoint": ')


# (name, corruption, command to run: "load" loads the model, "resume" resumes training,
# what the one-line error must say)
CHECKPOINT_CASES = [
    ("truncated weights", _truncate(WEIGHTS), "load", "unreadable weights"),
    ("missing tensor", _drop_tensor, "load", "missing tensor"),
    ("unexpected tensor", _extra_tensor, "load", "unexpected tensor stray.weight"),
    ("shape", _reshape_tensor, "load", "has shape"),
    ("non-finite tensor", _nan_tensor, "load", "holds non-finite values"),
    ("truncated config", _truncate(CONFIG), "load", "malformed config"),
    ("unknown config field", _unknown_config_field, "load", "hidden_layers"),
    ("config against weights", _bigger_z, "load", "the config needs"),
    ("latest names a missing folder", _latest_names_a_missing_folder, "load", "is missing"),
    ("latest malformed", _latest_malformed, "load", "latest.json: malformed"),
    ("truncated optimizer", _truncate(OPTIMIZER), "resume", "truncated or corrupt"),
    ("foreign optimizer", _foreign_optimizer, "resume", "does not match the model"),
    ("reshaped optimizer", _reshaped_optimizer, "resume", "optimizer exp_avg of"),
    ("truncated trainer state", _truncate(TRAINER), "resume", "unreadable trainer state"),
    ("trainer state without step", _trainer_without_step, "resume", "unreadable trainer state"),
]


@pytest.mark.parametrize(
    "corrupt, command, message",
    [case[1:] for case in CHECKPOINT_CASES],
    ids=[case[0] for case in CHECKPOINT_CASES],
)
def test_damaged_checkpoints_are_refused_naming_the_problem(
    trained, tmp_path, corrupt, command, message
):
    run = tmp_path / "run"
    shutil.copytree(trained["run"], run)
    corrupt(resolve_checkpoint(run))
    if command == "load":
        result = cli("encode", trained["good"], "--model", run)
    else:
        result = cli("train", "--data", trained["ds"], "--out", run, "--resume", "--steps", "6")
    assert_one_line_error(result, message)


def test_resuming_with_another_config_is_refused(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained["run"], run)
    result = cli(
        "train", "--config", "mel_2bar_small", "--data", trained["ds"], "--out", run, "--resume"
    )
    assert_one_line_error(result, "config mismatch", "model.decoder_sizes")
    with pytest.raises(CheckpointError, match="model.z_size = 8, the given config 9"):
        Trainer(TINY.replace(model={"z_size": 9}), load_dataset(trained["ds"]), run, resume=True)
    result = cli("train", "--data", trained["ds"], "--out", run, "--resume", "--batch-size", "4")
    assert_one_line_error(result, "--batch-size cannot change")


# ---------------------------------------------------------------------------------------------
# interrupted runs


def test_a_run_killed_with_sigkill_resumes_to_the_same_weights(trained, tmp_path):
    common = ["--data", trained["ds"]]
    common += "--steps 150 --seed 3 --checkpoint-every 10 --log-every 50 --eval-every 1000".split()
    cli("train", "--config", "mel_2bar_tiny", "--out", tmp_path / "straight", *common, ok=True)

    run = tmp_path / "killed"
    command = [*PYTHON_CLI, "train", "--config", "mel_2bar_tiny", "--out", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [*command, *map(str, common), "--threads", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    killed_at = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            try:
                step = json.loads((run / LATEST).read_text())["step"]
            except (OSError, ValueError, KeyError):
                step = 0
            if step >= 30:
                child.send_signal(signal.SIGKILL)
                killed_at = step
                break
            time.sleep(0.005)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()
    assert killed_at is not None

    survivor = read_checkpoint(run)  # the last checkpoint before the kill
    assert 30 <= survivor.step < 150
    resumed = cli("train", "--out", run, "--resume", *common, ok=True)
    assert f"resumed from {survivor.path} at step {survivor.step}" in resumed.output
    assert json.loads((run / LATEST).read_text())["step"] == 150
    straight = load_file(resolve_checkpoint(tmp_path / "straight") / WEIGHTS)
    assert same_state(straight, load_file(resolve_checkpoint(run) / WEIGHTS))


def test_a_stop_request_saves_the_last_whole_step_and_resumes_exactly(dataset, reference, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(TINY, dataset, run, options(8, checkpoint_every=1000), report=quiet)
    whole_step = trainer.train_step

    def step_interrupted_by_a_request():
        scalars = whole_step()
        if trainer.step == 2:  # as a signal handler would, while the third step runs
            trainer.request_stop("a test")
        return scalars

    trainer.train_step = step_interrupted_by_a_request
    with pytest.raises(TrainingStopped, match="stopped by a test at step 3; checkpoint saved"):
        trainer.run()
    assert read_checkpoint(run).step == 3

    resumed = Trainer(TINY, dataset, run, options(8), resume=True, report=quiet)
    resumed.run()
    assert same_state(resumed.model.state_dict(), reference.model.state_dict())


def test_a_run_stopped_by_sigterm_saves_a_checkpoint_and_resumes(trained, tmp_path):
    common = ["--data", trained["ds"], "--seed", "3", "--log-every", "1"]
    common += "--eval-every 100000 --checkpoint-every 100000".split()
    run = tmp_path / "terminated"
    command = [*PYTHON_CLI, "train", "--config", "mel_2bar_tiny", "--out", str(run)]
    command += ["--steps", "100000", *map(str, common), "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        for line in child.stdout:  # the first log line: the handler is installed
            if line.startswith(b"step "):
                break
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 128 + signal.SIGTERM, stderr.decode()

    saved = read_checkpoint(run)  # no periodic checkpoint came before: the stop wrote this one
    assert 1 <= saved.step < 100000
    message = stderr.decode().strip().splitlines()[-1]
    assert message == (
        f"stopped by SIGTERM at step {saved.step}; checkpoint saved in {saved.path} "
        "(continue with --resume)"
    )
    steps = ["--steps", saved.step + 2]
    resumed = cli("train", "--out", run, "--resume", *steps, *common, ok=True)
    assert f"resumed from {saved.path} at step {saved.step}" in resumed.output

    handler = signal.getsignal(signal.SIGTERM)
    straight = tmp_path / "straight"
    cli("train", "--config", "mel_2bar_tiny", "--out", straight, *steps, *common, ok=True)
    assert signal.getsignal(signal.SIGTERM) is handler  # the command put it back
    straight_weights = load_file(resolve_checkpoint(straight) / WEIGHTS)
    assert same_state(straight_weights, load_file(resolve_checkpoint(run) / WEIGHTS))


def _kill_inside(point: str, monkeypatch) -> None:
    """Make the next checkpoint save SIGKILL this process at `point`, after writing part of
    the file being written when a file is being written."""
    import safetensors.torch

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def half_written(real):
        def write(obj, path, *args, **kwargs):
            real(obj, path, *args, **kwargs)
            data = Path(path).read_bytes()
            Path(path).write_bytes(data[: len(data) // 2])
            die()

        return write

    if point == "weights":
        monkeypatch.setattr(safetensors.torch, "save_file", half_written(save_file))
    elif point == "optimizer":
        monkeypatch.setattr(torch, "save", half_written(torch.save))
    elif point in ("config", "trainer state", "latest.json"):
        name = {"config": CONFIG, "trainer state": TRAINER, "latest.json": LATEST}[point]
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            if os.readlink(f"/proc/self/fd/{fd}").split("/")[-1].startswith(f".{name}."):
                os.ftruncate(fd, 3)
                die()
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
    elif point == "rename":
        real_replace = os.replace

        def replace(src, dst) -> None:
            real_replace(src, dst)
            if Path(src).name.startswith(".ckpt-"):
                die()  # the folder has its name, latest.json still names the one before

        monkeypatch.setattr(os, "replace", replace)
    elif point == "pruning":
        real_rmtree = shutil.rmtree

        def rmtree(path, *args, **kwargs) -> None:
            if Path(path).name.startswith("ckpt-"):
                (Path(path) / WEIGHTS).unlink()
                die()
            real_rmtree(path, *args, **kwargs)

        monkeypatch.setattr(shutil, "rmtree", rmtree)


@pytest.mark.parametrize(
    "point, survivor_step",
    [
        ("weights", 4),
        ("optimizer", 4),
        ("config", 4),
        ("trainer state", 4),
        ("rename", 4),
        ("latest.json", 4),
        ("pruning", 6),
    ],
)
def test_a_kill_while_checkpointing_leaves_a_loadable_checkpoint(
    point, survivor_step, dataset, reference, tmp_path
):
    run = tmp_path / "run"
    trainer = Trainer(TINY, dataset, run, options(4), report=quiet)
    trainer.run()

    pid = os.fork()
    if pid == 0:  # the child trains on and is killed inside its next checkpoint
        try:
            with pytest.MonkeyPatch.context() as monkeypatch:
                _kill_inside(point, monkeypatch)
                trainer.options.num_steps = 6
                trainer.run()
        finally:
            os._exit(3)  # reached only when the kill did not happen
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL

    ckpt = read_checkpoint(run)
    assert ckpt.step == survivor_step
    load_model(run)
    assert load_optimizer_state(ckpt.path) is not None
    assert load_trainer_state(ckpt.path)["step"] == survivor_step

    resumed = Trainer(TINY, dataset, run, options(8), resume=True, report=quiet)
    resumed.run()
    assert same_state(resumed.model.state_dict(), reference.model.state_dict())
    leftovers = [p.name for p in run.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_a_checkpoint_of_an_existing_step_never_removes_the_one_in_use(dataset, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(TINY, dataset, run, options(2), report=quiet)
    trainer.run()
    first = resolve_checkpoint(run)
    again = trainer.save()  # the same step again, as a stop after non-finite steps may do
    assert again.name == f"{first.name}-1" and resolve_checkpoint(run) == again
    assert read_checkpoint(first).step == read_checkpoint(again).step == 2
    trainer.step = 3
    trainer.save()  # two kept: the older copy of step 2 goes
    assert sorted(p.name for p in run.glob("ckpt-*")) == [again.name, "ckpt-00000003"]


def test_a_fresh_run_in_an_old_run_folder_keeps_its_own_checkpoints(dataset, tmp_path):
    run = tmp_path / "run"
    Trainer(TINY, dataset, run, options(8), report=quiet).run()
    assert read_checkpoint(run).step == 8
    Trainer(TINY, dataset, run, options(2, seed=9), report=quiet).run()
    assert read_checkpoint(run).step == 2
    assert sorted(p.name for p in run.glob("ckpt-*")) == ["ckpt-00000002"]


# ---------------------------------------------------------------------------------------------
# non-finite steps


def _track_running_mean(model: torch.nn.Module, poisoned) -> None:
    """Give `model` a buffer updated in every loss, as models with running statistics do, and
    make the loss non-finite at the steps `poisoned(step)` is true."""
    model.register_buffer("mean_token", torch.zeros(()))
    original = model.training_loss

    def training_loss(batch, step):
        loss, scalars = original(batch, step)
        model.mean_token.add_(batch.float().mean())
        return (loss * float("nan") if poisoned(step) else loss), scalars

    model.training_loss = training_loss


def test_a_non_finite_loss_or_gradient_skips_the_step(dataset, tmp_path):
    lines = []
    trainer = Trainer(TINY, dataset, tmp_path / "run", options(8), report=lines.append)
    _track_running_mean(trainer.model, lambda step: step == 3)
    param = next(trainer.model.parameters())
    param.register_hook(lambda grad: grad * float("nan") if trainer.step == 5 else grad)

    changed = []
    real_step = trainer.train_step

    def observed_step():
        before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        moments = [t.clone() for t in optimizer_tensors(trainer.optimizer.state_dict())]
        scalars = real_step()
        after_moments = optimizer_tensors(trainer.optimizer.state_dict())
        unchanged = (
            same_state(before, trainer.model.state_dict())
            and len(moments) == len(after_moments)
            and all(torch.equal(a, b) for a, b in zip(moments, after_moments, strict=True))
        )
        changed.append((trainer.step, scalars is not None, not unchanged))
        return scalars

    trainer.train_step = observed_step
    trainer.run()
    assert [(step, ok) for step, ok, _ in changed if not ok] == [(3, False), (5, False)]
    assert all(moved == ok for _, ok, moved in changed)  # a skipped step changes nothing
    assert trainer.nonfinite_total == 2
    assert load_trainer_state(resolve_checkpoint(tmp_path / "run"))["nonfinite_total"] == 2
    assert any("step 4: non-finite loss, step skipped" in line for line in lines)
    assert any("step 6: non-finite gradient norm, step skipped" in line for line in lines)


def test_many_non_finite_steps_stop_with_the_last_good_state_saved(dataset, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(
        TINY, dataset, run, options(20, checkpoint_every=5, max_nonfinite_in_a_row=4), report=quiet
    )
    _track_running_mean(trainer.model, lambda step: step >= 7)
    with pytest.raises(TrainingError, match="4 non-finite steps in a row; stopped, last good"):
        trainer.run()

    good = Trainer(TINY, dataset, tmp_path / "good", options(7, checkpoint_every=5), report=quiet)
    _track_running_mean(good.model, lambda step: False)
    good.run()
    saved = resolve_checkpoint(run)
    assert json.loads((run / LATEST).read_text())["step"] == 7
    assert same_state(load_file(saved / WEIGHTS), good.model.state_dict())  # buffer included
    state = load_optimizer_state(saved)
    good_state = good.optimizer.state_dict()
    assert all(
        torch.equal(a, b)
        for a, b in zip(optimizer_tensors(state), optimizer_tensors(good_state), strict=True)
    )
    assert load_trainer_state(saved)["nonfinite_total"] == 4


def test_the_train_command_reports_a_run_stopped_by_non_finite_steps(
    trained, tmp_path, monkeypatch
):
    from musicvae_py.models.music_vae import MusicVAE

    real = MusicVAE.training_loss

    def poisoned(self, batch, step):
        loss, scalars = real(self, batch, step)
        return (loss * float("nan") if step >= 2 else loss), scalars

    monkeypatch.setattr(MusicVAE, "training_loss", poisoned)
    args = ["--data", trained["ds"], "--out", tmp_path / "run", "--steps", "50"]
    result = cli("train", "--config", "mel_2bar_tiny", *args, "--checkpoint-every", "100")
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: 20 non-finite steps in a row; stopped, last good state saved")
    assert "Traceback" not in result.output
    assert read_checkpoint(tmp_path / "run").step == 2


# ---------------------------------------------------------------------------------------------
# outputs


def _existing(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"precious")
    return b"precious"


def output_command(command: str, t: dict[str, Path], out: Path) -> list:
    """The arguments of a command that writes `out` (with the commands that write a folder of
    files, one of the files in it)."""
    model = ["--model", t["run"]]
    return {
        "sample": ["sample", *model, "-n", "1", "--out", out.parent],
        "interpolate": ["interpolate", t["good"], t["good"], *model, "--out", out.parent],
        "reconstruct": ["reconstruct", t["good"], *model, "--out", out],
        "encode": ["encode", t["good"], *model, "--out", out],
        "export": ["export", t["run"], out.parent],
        "prepare": ["prepare", t["good"], "--out", out.parent, "--config", "mel_2bar_tiny"],
    }[command]


OUTPUT_NAMES = {
    "sample": "sample-001.mid",
    "interpolate": "interp-00.mid",
    "reconstruct": "rec.mid",
    "encode": "z.json",
    "export": WEIGHTS,
    "prepare": "meta.json",
}


@pytest.mark.parametrize("command", sorted(OUTPUT_NAMES))
def test_outputs_are_never_overwritten_without_force(command, trained, tmp_path):
    out = tmp_path / "out" / OUTPUT_NAMES[command]
    before = _existing(out)
    args = output_command(command, trained, out)
    assert_one_line_error(cli(*args), "--force")
    assert out.read_bytes() == before
    cli(*args, "--force", ok=True)
    assert out.read_bytes() != before


def test_train_never_overwrites_a_run_without_force(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained["run"], run)
    before = {p.name: p.read_bytes() for p in resolve_checkpoint(run).iterdir()}
    result = cli("train", "--config", "mel_2bar_tiny", "--data", trained["ds"], "--out", run)
    assert_one_line_error(result, "--resume or --force")
    assert {p.name: p.read_bytes() for p in resolve_checkpoint(run).iterdir()} == before


def _unwritable_folders(tmp_path: Path) -> list[Path]:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    folders = [blocker / "out"]
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if not os.access(locked, os.W_OK):  # as root, permissions do not stop writes
        folders.append(locked / "out")
    return folders


@pytest.mark.parametrize("command", ["sample", "reconstruct", "encode", "export", "prepare"])
def test_an_unwritable_output_folder_is_a_clear_error(command, trained, tmp_path):
    for folder in _unwritable_folders(tmp_path):
        out = folder / OUTPUT_NAMES[command]
        line = assert_one_line_error(cli(*output_command(command, trained, out)))
        assert "cannot write here" in line and str(folder) in line
        assert not out.exists()


def test_train_refuses_an_unwritable_run_folder_before_training(trained, tmp_path):
    for folder in _unwritable_folders(tmp_path):
        result = cli("train", "--config", "mel_2bar_tiny", "--data", trained["ds"], "--out", folder)
        assert_one_line_error(result, str(folder), "cannot write here")


def test_a_refused_train_start_leaves_no_new_run_folder(dataset, tmp_path):
    new = tmp_path / "runs" / "new"
    kept = tmp_path / "kept"
    kept.mkdir()
    for out in (new, kept):
        result = cli(
            "train", "--config", "mel_16bar_hierdec_tiny", "--data", dataset.path, "--out", out
        )
        assert_one_line_error(result, str(dataset.path), "config mel_16bar_hierdec_tiny needs")
    assert not (tmp_path / "runs").exists()  # both folders the command made are gone
    assert kept.is_dir()  # a folder that was there before stays


def test_only_folders_made_by_a_failed_block_and_left_empty_are_removed(tmp_path):
    with pytest.raises(RuntimeError), removed_if_left_empty(tmp_path / "a" / "b"):
        (tmp_path / "a" / "b").mkdir(parents=True)
        (tmp_path / "a" / "note.txt").write_text("written before the failure")
        raise RuntimeError("refused")
    assert not (tmp_path / "a" / "b").exists() and (tmp_path / "a" / "note.txt").exists()
    with removed_if_left_empty(tmp_path / "c"):
        (tmp_path / "c").mkdir()
    assert (tmp_path / "c").is_dir()


def _no_space(fd: int) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("command", ["sample", "reconstruct", "encode", "prepare"])
def test_a_full_disk_gives_a_clear_error_and_no_partial_file(
    command, trained, tmp_path, monkeypatch
):
    out = tmp_path / "out" / OUTPUT_NAMES[command]
    args = output_command(command, trained, out)
    if command == "prepare":  # over an older dataset, whose meta.json must not survive
        cli(*args, ok=True)
        args.append("--force")
    else:
        out.parent.mkdir()
    monkeypatch.setattr(os, "fsync", _no_space)  # where a full disk shows on most file systems
    result = cli(*args)
    if command == "prepare":  # the files were read: the bar is closed, the error has its own line
        assert result.exit_code == 1 and "Traceback" not in result.output
        bar, line = result.output.rstrip("\n").split("\n")
        assert "1/1" in bar and line.startswith("error: ")
    else:
        line = assert_one_line_error(result)
    assert "No space left on device" in line
    left = [p.name for p in out.parent.iterdir()]
    if command == "prepare":  # complete arrays may stay, but no meta.json marks them a dataset
        assert sorted(left) == ["train.npy", "valid.npy"]
        with pytest.raises(DatasetError, match="not a prepared dataset"):
            load_dataset(out.parent)
    else:
        assert left == []


def _in_a_child_with_a_file_size_limit(limit: int, work) -> str:
    """Run `work()` in a forked child whose files cannot grow past `limit` bytes (the kernel
    refuses the write, as on a full disk); returns the child's one-line report."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
            try:
                work()
                message = "no error"
            except MusicVAEError as err:
                message = f"MusicVAEError: {err}"
            except BaseException as err:  # noqa: B036 - every outcome goes back to the parent
                message = f"{type(err).__name__}: {err}"
            os.write(write_end, message.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as f:
        return f.read()


def test_a_full_disk_under_the_native_writers_is_reported(dataset, tmp_path):
    notes = [NoteList([(60 + i % 12, i, i + 1) for i in range(400)])]
    midi = tmp_path / "big.mid"
    report = _in_a_child_with_a_file_size_limit(512, lambda: write_midi(midi, notes))
    assert report.startswith("MusicVAEError") and "File too large" in report, report
    assert list(tmp_path.iterdir()) == []

    run = tmp_path / "run"
    trainer = Trainer(TINY, dataset, run, options(2), report=quiet)
    trainer.run()
    trainer.step = 4
    weights = (resolve_checkpoint(run) / WEIGHTS).stat().st_size
    for limit in (1024, weights + 1024):  # inside the weights, then inside the optimizer state
        report = _in_a_child_with_a_file_size_limit(limit, trainer.save)
        assert report.startswith("MusicVAEError") and "cannot write checkpoint" in report, report
        assert read_checkpoint(run).step == 2
        assert sorted(p.name for p in run.iterdir()) == ["ckpt-00000002", LATEST]


def test_a_full_disk_stops_training_with_the_last_checkpoint_intact(dataset, tmp_path, monkeypatch):
    import safetensors.torch

    run = tmp_path / "run"
    saves = []

    def save_file_until_full(tensors, path, metadata=None):
        saves.append(path)
        if len(saves) == 2:
            Path(path).write_bytes(b"\0" * 100)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        save_file(tensors, path, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", save_file_until_full)
    trainer = Trainer(TINY, dataset, run, options(8), report=quiet)
    with pytest.raises(MusicVAEError, match="cannot write checkpoint .No space left on device"):
        trainer.run()
    assert read_checkpoint(run).step == 2
    assert sorted(p.name for p in run.iterdir()) == ["ckpt-00000002", LATEST]


# ---------------------------------------------------------------------------------------------
# safe loading


class _Payload:
    """Unpickling this runs `exec`, which creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("layout", ["torch archive", "bare pickle"])
def test_a_crafted_pickle_in_the_optimizer_state_is_refused_unrun(layout, trained, tmp_path):
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(_Payload(marker)))  # the payload is live: unpickling runs it
    assert marker.read_text() == "code ran"
    marker.unlink()

    run = tmp_path / "run"
    shutil.copytree(trained["run"], run)
    target = resolve_checkpoint(run) / OPTIMIZER
    if layout == "torch archive":
        torch.save({"state": {}, "param_groups": [], "x": _Payload(marker)}, target)
    else:
        target.write_bytes(pickle.dumps(_Payload(marker)))

    with pytest.raises(CheckpointError, match="refused"):
        load_optimizer_state(target.parent)
    result = cli("train", "--data", trained["ds"], "--out", run, "--resume", "--steps", "6")
    assert_one_line_error(result, str(target), "refused")
    assert not marker.exists()


def test_a_crafted_pickle_in_a_dataset_is_refused_unrun(trained, tmp_path):
    marker = tmp_path / "marker"
    data = tmp_path / "ds"
    shutil.copytree(trained["ds"], data)
    with open(data / "train.npy", "wb") as f:
        np.save(f, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match="train.npy: unreadable"):
        load_dataset(data)
    assert not marker.exists()


def test_evaluating_an_empty_split_names_the_dataset(trained, tmp_path):
    single = tmp_path / "single"
    single.mkdir()
    (single / "only.mid").write_bytes(melody_file(40, bars=4))
    run("prepare", single, "--out", tmp_path / "ds1", "--workers", 1)  # one file: all in train
    result = run("evaluate", "--model", trained["run"], "--data", tmp_path / "ds1", ok=False)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines == [lines[-1]] and "split 'valid' holds no examples" in lines[-1]
    assert str(tmp_path / "ds1") in lines[-1] and "Traceback" not in result.output
