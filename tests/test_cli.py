"""Every melody command end to end, on MIDI written by the test."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from musicvae_py.converters.midi_io import read_midi
from tests.conftest import phrase, run, write_score


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A dataset, a tiny trained run and two input files, shared by the tests below."""
    root = tmp_path_factory.mktemp("cli")
    corpus = root / "corpus"
    corpus.mkdir()
    for i in range(6):
        write_score(corpus / f"t{i}.mid", [{"notes": phrase(4, base=58 + i)}])
    one = write_score(root / "one.mid", [{"notes": phrase(2, base=60)}])
    many = write_score(root / "many.mid", [{"notes": phrase(5, base=64)}])
    run(
        "prepare",
        corpus,
        "--out",
        root / "ds",
        "--config",
        "mel_2bar_tiny",
        "--valid-fraction",
        "0.3",
        "--workers",
        "1",
    )
    run(
        "train",
        "--config",
        "mel_2bar_tiny",
        "--data",
        root / "ds",
        "--out",
        root / "run",
        "--steps",
        "6",
        "--log-every",
        "3",
        "--eval-every",
        "6",
        "--checkpoint-every",
        "3",
    )
    return {"root": root, "run": root / "run", "ds": root / "ds", "one": one, "many": many}


def test_prepare_reports_counts(tmp_path, melody_corpus):
    (melody_corpus / "notes.mid").write_text("not midi")
    result = run("prepare", melody_corpus, "--out", tmp_path / "ds", "--workers", "1")
    assert "files read:          8 of 9" in result.output
    assert "unreadable" in result.output
    assert "3/4" in result.output and "6/8" in result.output
    assert "empty windows dropped" not in result.output  # melodies drop no silent windows
    again = run("prepare", melody_corpus, "--out", tmp_path / "ds", ok=False)
    assert again.exit_code == 1 and "--force" in again.output


def test_train_logs_and_refuses_to_clobber(trained):
    meta = json.loads((trained["run"] / "latest.json").read_text())
    assert meta["step"] == 6
    again = run(
        "train",
        "--config",
        "mel_2bar_tiny",
        "--data",
        trained["ds"],
        "--out",
        trained["run"],
        ok=False,
    )
    assert again.exit_code == 1 and "--resume" in again.output
    resumed = run(
        "train",
        "--data",
        trained["ds"],
        "--out",
        trained["run"],
        "--resume",
        "--steps",
        "8",
        "--log-every",
        "2",
    )
    assert "resumed from" in resumed.output and "step       8" in resumed.output


def test_evaluate_table_and_json(trained):
    table = run("evaluate", "--model", trained["run"], "--data", trained["ds"])
    assert "teacher_forced_accuracy" in table.output and "elbo_nats" in table.output
    metrics = json.loads(
        run("evaluate", "--model", trained["run"], "--data", trained["ds"], "--json").output
    )
    assert 0 <= metrics["sampled_accuracy"] <= 1 and metrics["windows"] > 0


def test_sample_writes_midi_and_plots(trained, tmp_path):
    out = tmp_path / "samples"
    run("sample", "--model", trained["run"], "-n", "3", "--seed", "1", "--out", out, "--plot")
    files = sorted(out.glob("*.mid"))
    assert [f.name for f in files] == ["sample-001.mid", "sample-002.mid", "sample-003.mid"]
    assert read_midi(files[0]).qpm == pytest.approx(120)
    assert Image.open(out / "sample-001.png").size[0] > 100
    again = run("sample", "--model", trained["run"], "-n", "1", "--out", out, ok=False)
    assert again.exit_code == 1 and "already exists" in again.output


def test_interpolate_lists_windows_and_writes_every_step(trained, tmp_path):
    ask = run(
        "interpolate",
        trained["one"],
        trained["many"],
        "--model",
        trained["run"],
        "--out",
        tmp_path,
        ok=False,
    )
    assert ask.exit_code == 1 and "choose one with --window" in ask.output
    assert "[1] steps 16-47" in ask.output
    run(
        "interpolate",
        trained["one"],
        trained["many"],
        "--model",
        trained["run"],
        "--window",
        "0",
        "--window",
        "1",
        "--steps",
        "4",
        "--out",
        tmp_path / "i",
        "--seed",
        "0",
    )
    names = sorted(p.name for p in (tmp_path / "i").glob("*.mid"))
    assert names == [
        "interp-00.mid",
        "interp-01.mid",
        "interp-02.mid",
        "interp-03.mid",
        "interp-all.mid",
    ]


def test_reconstruct_and_encode(trained, tmp_path):
    out = tmp_path / "rec.mid"
    run("reconstruct", trained["one"], "--model", trained["run"], "--out", out, "--seed", "2")
    assert out.is_file()
    record = json.loads(run("encode", trained["one"], "--model", trained["run"]).output)
    assert set(record) == {"z", "mu", "sigma"} and len(record["mu"]) == 8
    run("encode", trained["one"], "--model", trained["run"], "--out", tmp_path / "z.npy")
    assert np.load(tmp_path / "z.npy").shape == (3, 8)
    run("encode", trained["one"], "--model", trained["run"], "--out", tmp_path / "z.json")
    assert json.loads((tmp_path / "z.json").read_text())["mu"] == record["mu"]


def test_export_and_bundled_model_listing(trained, tmp_path):
    run("export", trained["run"], tmp_path / "m", "--half")
    run("sample", "--model", tmp_path / "m", "-n", "1", "--out", tmp_path / "s")
    umask = os.umask(0)
    os.umask(umask)
    for name in ("model.safetensors", "config.json"):  # readable as any output, not private
        assert (tmp_path / "m" / name).stat().st_mode & 0o777 == 0o666 & ~umask
    assert "mel_2bar" in run("models").output
    assert "mel_2bar_small" in run("configs").output


def test_bundled_model_samples_with_no_arguments_but_out(tmp_path):
    run("sample", "-n", "2", "--out", tmp_path, "--seed", "0")
    notes = read_midi(tmp_path / "sample-001.mid").tracks[0]
    assert len(notes) > 0 and notes.pitch.min() >= 21 and notes.pitch.max() <= 108


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p.write_text("this is text"), "not a MIDI file"),
        (lambda p: write_score(p, []), "no notes"),
        (
            lambda p: write_score(
                p, [{"notes": [(36, i, i + 1) for i in range(0, 64, 2)], "is_drum": True}]
            ),
            "no melody",
        ),
    ],
    ids=["text", "empty", "drums-only"],
)
def test_bad_inputs_give_one_line_and_exit_1(trained, tmp_path, make, reason):
    bad = tmp_path / "bad.mid"
    make(bad)
    for args in (
        ["encode", bad],
        ["reconstruct", bad, "--out", tmp_path / "r.mid"],
        ["interpolate", bad, trained["one"], "--out", tmp_path / "i"],
    ):
        result = run(*args, "--model", trained["run"], ok=False)
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and str(bad) in lines[0] and reason in lines[0]
        assert "Traceback" not in result.output
    assert not (tmp_path / "r.mid").exists() and not (tmp_path / "i").exists()


def test_unknown_model_and_config_are_clear(tmp_path):
    result = run("sample", "--model", tmp_path / "nothing", "--out", tmp_path, ok=False)
    assert result.exit_code == 1 and "not a model" in result.output
    result = run("prepare", tmp_path, "--out", tmp_path / "d", "--config", "nope", ok=False)
    assert result.exit_code == 1 and "unknown config" in result.output


def test_prepare_refusals_are_one_line_without_a_progress_bar(tmp_path, melody_corpus):
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = tmp_path / "no" / "such" / "path"
    table = tmp_path / "info.csv"
    table.write_text("name,part\nt0.mid,train\n")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    cases = [
        ([missing, "--out", tmp_path / "d1"], "no MIDI files found", str(missing)),
        ([empty, "--out", tmp_path / "d2"], "no MIDI files found", ".mid or .midi"),
        (
            [melody_corpus, "--split-csv", table, "--out", tmp_path / "d3"],
            "midi_filename and split columns",
            str(table),
        ),
        ([melody_corpus, "--out", blocker / "ds"], "cannot write here", str(blocker)),
    ]
    for args, *needles in cases:
        result = run("prepare", *args, "--workers", "1", ok=False)
        assert result.exit_code == 1, result.output
        assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
        assert "\r" not in result.output and "file/s" not in result.output
        assert all(needle in result.output for needle in needles), (needles, result.output)
        assert not (tmp_path / "d1").exists() and not (tmp_path / "d2").exists()


def test_prepare_names_the_missing_paths_when_it_finds_no_file(tmp_path):
    missing = tmp_path / "no" / "such" / "path"
    result = run("prepare", missing, "--out", tmp_path / "ds", ok=False)
    assert result.output == f"error: no MIDI files found: {missing}: no such file or folder\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    both = run("prepare", empty, missing, "--out", tmp_path / "ds", ok=False)
    assert both.output == result.output  # the empty folder is no problem, the missing path is


@pytest.mark.parametrize("module", ["musicvae_py.cli", "musicvae_py.cli.main"])
def test_python_m_runs_the_command_line(module):
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "prepare" in result.stdout and "image" in result.stdout


def test_bundled_models_stay_under_30_mb_together():
    from musicvae_py.training.checkpoint import bundled_models

    folders = bundled_models().values()
    total = sum(f.stat().st_size for folder in folders for f in folder.iterdir())
    assert len(folders) >= 5 and total < 30e6
