"""Shared test helpers: MIDI files made on the fly, the command line run in-process, a model
overfitted to one batch, and single-threaded torch."""

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

TICKS = 480  # ticks per quarter in the files the tests write; one 16th step is 120 ticks


def write_score(
    path: Path,
    tracks: list[dict],
    time_signatures: list[tuple[int, int, int]] = ((0, 4, 4),),
    tpq: int = TICKS,
) -> Path:
    """Write a MIDI file. Each track dict has notes [(pitch, start step, end step)] and
    optional program, is_drum and name; time signatures are (step, numerator, denominator)."""
    import symusic

    score = symusic.Score(tpq)
    step = tpq // 4
    for at, num, den in time_signatures:
        score.time_signatures.append(symusic.TimeSignature(at * step, num, den))
    for spec in tracks:
        track = symusic.Track(
            spec.get("name", ""), spec.get("program", 0), spec.get("is_drum", False)
        )
        for pitch, start, end in spec["notes"]:
            track.notes.append(symusic.Note(start * step, (end - start) * step, pitch, 90))
        score.tracks.append(track)
    score.dump_midi(str(path))
    return path


def phrase(bars: int, base: int = 60, offset: int = 0) -> list[tuple[int, int, int]]:
    """A monophonic line of quarter and eighth notes lasting `bars` 4/4 bars."""
    notes, step = [], offset
    pattern = [0, 2, 4, 5, 7, 5, 4, 2]
    i = 0
    while step < offset + bars * 16:
        length = 4 if i % 3 == 0 else 2
        notes.append(
            (base + pattern[i % len(pattern)], step, min(step + length, offset + bars * 16))
        )
        step += length
        i += 1
    return notes


@pytest.fixture
def melody_corpus(tmp_path: Path) -> Path:
    """A folder of small melody files in several meters, plus a nested folder."""
    folder = tmp_path / "corpus"
    (folder / "nested").mkdir(parents=True)
    for i in range(6):
        write_score(folder / f"tune{i}.mid", [{"notes": phrase(6, base=55 + 2 * i)}])
    write_score(
        folder / "nested" / "waltz.mid",
        [{"notes": phrase(6, base=62)}],
        time_signatures=[(0, 3, 4)],
    )
    write_score(
        folder / "nested" / "jig.mid", [{"notes": phrase(6, base=64)}], time_signatures=[(0, 6, 8)]
    )
    return folder


def run(*args, ok: bool = True):
    """`musicvae ARGS` run in this process (arguments may be paths or numbers); asserts exit
    status 0 unless `ok` is False. Returns click's result (exit_code, output)."""
    from click.testing import CliRunner

    from musicvae_py.cli.main import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def overfit(model: torch.nn.Module, batch: torch.Tensor, steps: int) -> None:
    """Adam (learning rate 0.01) on the model's training loss of one batch, `steps` times."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(steps):
        optimizer.zero_grad()
        loss, _ = model.training_loss(batch, step)
        loss.backward()
        optimizer.step()
