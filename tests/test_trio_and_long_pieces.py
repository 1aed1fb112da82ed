"""Trios, a corpus's own split, the hierarchical encoder, and pieces longer than a window."""

import numpy as np
import pytest
import symusic
import torch

from musicvae_py.configs import get_config
from musicvae_py.converters.midi_io import read_midi
from musicvae_py.converters.trio import covered_bars, extract_trio_windows, trio_notelists
from musicvae_py.data.dataset import load_dataset
from musicvae_py.errors import ExtractionError
from musicvae_py.inference import TrainedModel, latent_path
from musicvae_py.models.music_vae import MusicVAE
from tests.conftest import phrase, run, write_score

TRIO = get_config("trio_16bar_hierdec_tiny")
MELODY = get_config("mel_2bar_tiny")


def trio_file(path, bars: int = 18, bass_rest: tuple[int, int] | None = None):
    """Melody (program 0), bass (program 33) and drums for `bars` bars; the bass may rest
    for the bars [first, end)."""
    bass = [(36 + (b % 4), b * 16, b * 16 + 8) for b in range(bars)]
    if bass_rest:
        bass = [n for n in bass if not bass_rest[0] * 16 <= n[1] < bass_rest[1] * 16]
    drums = [(36, s, s + 1) for s in range(0, bars * 16, 4)] + [
        (42, s, s + 1) for s in range(2, bars * 16, 4)
    ]
    return write_score(
        path,
        [
            {"notes": phrase(bars, base=67), "program": 0},
            {"notes": bass, "program": 33},
            {"notes": drums, "is_drum": True},
        ],
    )


def test_trio_windows_stack_melody_bass_and_drums(tmp_path):
    score = read_midi(trio_file(tmp_path / "trio.mid"))
    extraction = extract_trio_windows(score, TRIO.data)
    windows = extraction.windows
    assert windows.shape == (3, 256, 3)  # 18 bars: windows start on bars 0, 1 and 2
    assert extraction.starts == [0, 16, 32]
    first = windows[0]
    assert first[0, 0] == 67 - 21 + 2  # the melody's first note-on
    assert first[0, 1] == 36 - 21 + 2 and first[8, 1] == 1  # bass on, then off
    assert first[0, 2] == 1 and first[2, 2] == 4  # kick, then closed hi-hat
    melody, bass, drums = trio_notelists(first, TRIO.data, program=5)
    assert (melody.program, bass.program, drums.is_drum) == (5, 33, True)
    assert bass.notes[0] == (36, 0, 8)


def test_trio_coverage_fills_short_rests_only():
    sounding = np.array([1, 0, 0, 1, 0, 0, 0, 1], dtype=bool)
    assert covered_bars(sounding, 2).tolist() == [1, 1, 1, 1, 0, 0, 0, 1]


def test_trio_needs_all_three_parts_playing_together(tmp_path):
    rest = trio_file(tmp_path / "rest.mid", bars=20, bass_rest=(6, 10))  # 4 silent bass bars
    with pytest.raises(ExtractionError, match="never all play for 16 bars"):
        extract_trio_windows(read_midi(rest), TRIO.data)
    short_rest = trio_file(tmp_path / "short.mid", bars=17, bass_rest=(6, 8))
    assert len(extract_trio_windows(read_midi(short_rest), TRIO.data).windows) == 2
    solo = write_score(tmp_path / "solo.mid", [{"notes": phrase(17)}])
    with pytest.raises(ExtractionError, match="no bass track .* no drum track"):
        extract_trio_windows(read_midi(solo), TRIO.data)


def test_trio_model_decodes_three_streams():
    model = MusicVAE(TRIO).eval()
    tokens = torch.stack(
        [
            torch.randint(0, 90, (2, 256)),
            torch.randint(0, 90, (2, 256)),
            torch.randint(0, 512, (2, 256)),
        ],
        dim=-1,
    )
    mu, _ = model.encode(tokens)
    logits = model.teacher_forced_logits(mu, tokens)
    assert [lg.shape for lg in logits] == [(2, 256, 90), (2, 256, 90), (2, 256, 512)]
    assert model.generate(mu, temperature=0.0).shape == (2, 256, 3)
    metrics = model.summarize_evaluation([model.evaluate_batch(tokens, torch.Generator())])
    assert {"teacher_forced_accuracy_bass", "sampled_accuracy_drums"} <= set(metrics)
    assert len(metrics["sampled_accuracy_per_bar"]) == 16


def test_hierarchical_encoder_reads_bars_then_the_sequence_of_bars():
    config = get_config("mel_16bar_hierdec_tiny").replace(model={"bar_encoder_sizes": (12,)})
    model = MusicVAE(config).eval()
    tokens = torch.randint(0, 90, (3, 256))
    mu, sigma = model.encode(tokens)
    assert mu.shape == sigma.shape == (3, 8)
    assert model.encoder.lower.output_size == 32 and model.encoder.output_size == 24
    changed = tokens.clone()
    changed[:, 200] = (changed[:, 200] + 1) % 90  # one step of bar 12
    assert not torch.allclose(model.encode(changed)[0], mu)


def test_trio_end_to_end(tmp_path):
    corpus = tmp_path / "trios"
    corpus.mkdir()
    for i in range(4):
        trio_file(corpus / f"trio{i}.mid", bars=17 + i)
    write_score(corpus / "solo.mid", [{"notes": phrase(17)}])
    prepared = run(
        "prepare",
        corpus,
        "--out",
        tmp_path / "ds",
        "--config",
        "trio_16bar_hierdec_tiny",
        "--valid-fraction",
        "0.3",
        "--workers",
        "1",
    )
    assert "no trio" in prepared.output and "files read:          4 of 5" in prepared.output
    run(
        "train",
        "--config",
        "trio_16bar_hierdec_tiny",
        "--data",
        tmp_path / "ds",
        "--out",
        tmp_path / "run",
        "--steps",
        "2",
        "--eval-every",
        "2",
        "--eval-windows",
        "4",
    )
    evaluated = run("evaluate", "--model", tmp_path / "run", "--data", tmp_path / "ds")
    assert "teacher_forced_accuracy_bass" in evaluated.output
    run("sample", "--model", tmp_path / "run", "-n", "1", "--out", tmp_path / "s", "--plot")
    tracks = read_midi(tmp_path / "s" / "sample-001.mid").tracks
    for name in ("melody", "bass", "drums"):
        assert (tmp_path / "s" / f"sample-001-{name}.png").is_file()
    assert {t.program for t in tracks if not t.is_drum} <= {0, 33}
    run("encode", corpus / "trio0.mid", "--model", tmp_path / "run", "--window", "0")
    run(
        "reconstruct",
        corpus / "trio0.mid",
        "--model",
        tmp_path / "run",
        "--window",
        "1",
        "--out",
        tmp_path / "r.mid",
    )
    run(
        "interpolate",
        corpus / "trio0.mid",
        corpus / "trio1.mid",
        "--window",
        "0",
        "--model",
        tmp_path / "run",
        "--steps",
        "3",
        "--out",
        tmp_path / "i",
    )
    assert len(list((tmp_path / "i").glob("interp-*.mid"))) == 4


def test_prepare_follows_a_split_table(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    for i in range(5):
        write_score(corpus / f"t{i}.mid", [{"notes": phrase(3, base=60 + i)}])
    table = tmp_path / "info.csv"
    rows = ["midi_filename,split", "c/t0.mid,train", "c/t1.mid,validation", "c/t2.mid,test"]
    table.write_text("\n".join(rows + ["c/t3.mid,train"]) + "\n")
    result = run(
        "prepare", corpus, "--out", tmp_path / "ds", "--split-csv", table, "--workers", "1"
    )
    assert "files not in" in result.output and ": 1" in result.output  # t4 is not listed
    dataset = load_dataset(tmp_path / "ds")
    files = dataset.meta["splits"]
    assert files["test"]["files"] == [str(corpus / "t2.mid")]
    assert str(corpus / "t1.mid") in files["valid"]["files"]
    assert dataset.num_examples("test") == 2  # 3 bars: windows on bars 0 and 1
    table.write_text("midi_filename,split\nc/t0.mid,holdout\n")
    bad = run("prepare", corpus, "--out", tmp_path / "ds2", "--split-csv", table, ok=False)
    assert bad.exit_code == 1 and "unknown split 'holdout'" in bad.output


def test_latent_path_passes_through_every_anchor():
    anchors = torch.randn(3, 4)
    path = latent_path(anchors, 4)
    assert path.shape == (7, 4)
    for k, index in enumerate((0, 3, 6)):
        assert torch.allclose(path[index], anchors[k], atol=1e-5)


@pytest.fixture(scope="module")
def melody_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("long")
    corpus = root / "c"
    corpus.mkdir()
    for i in range(4):
        write_score(corpus / f"t{i}.mid", [{"notes": phrase(4, base=60 + i)}])
    run("prepare", corpus, "--out", root / "ds", "--config", "mel_2bar_tiny", "--workers", "1")
    run(
        "train",
        "--config",
        "mel_2bar_tiny",
        "--data",
        root / "ds",
        "--out",
        root / "run",
        "--steps",
        "30",
    )
    return root


def test_long_sample_is_one_file_with_one_tempo(melody_run, tmp_path):
    run(
        "sample",
        "--model",
        melody_run / "run",
        "-n",
        "1",
        "--bars",
        "9",
        "--seed",
        "4",
        "--out",
        tmp_path,
    )
    path = tmp_path / "sample-001.mid"
    score = symusic.Score(str(path))
    assert len(score.tempos) == 1 and len(score.time_signatures) == 1
    assert read_midi(path).tracks[0].end.max() <= 9 * 16


def test_walk_starts_each_window_from_the_last_tokens_of_the_one_before(melody_run):
    model = TrainedModel.load(melody_run / "run")
    z = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    pieces = model.walk(z, temperature=0.0)
    second = model.model.generate(
        torch.from_numpy(z[1:2]), 0.0, first_tokens=torch.tensor([int(pieces[0][-1])])
    )
    assert np.array_equal(pieces[1], second[0].numpy())
    assert model.seam_silence(np.array([2, 0, 1, 0]), np.array([0, 0, 3, 0])) == 4  # steps 2-5
    assert model.seam_silence(np.array([2, 0, 1, 0]), np.array([], dtype=int)) == 2  # the tail


def test_walk_keeps_the_draw_without_a_silent_seam_or_tail(melody_run, monkeypatch):
    model = TrainedModel.load(melody_run / "run")
    steps = model.steps
    note = [5] + [0] * (steps - 1)  # one note held through the window
    silent_end = [5, 1] + [0] * (steps - 2)  # a note, then silence to the end
    silent = [0] * steps
    draws = iter([[silent_end, note], [silent, silent_end], [silent_end, note]])

    def generate(z, temperature, generator=None, first_tokens=None):
        return torch.tensor(next(draws))[: len(z)]

    monkeypatch.setattr(model.model, "generate", generate)
    pieces = model.walk(np.zeros((2, model.z_size), np.float32), candidates=2)
    assert pieces[0].tolist() == note  # the draw that does not end in silence
    assert pieces[1].tolist() == note  # from a second round: the first had none


def test_sample_through_files_and_interpolate_many(melody_run, tmp_path):
    inputs = [melody_run / "c" / f"t{i}.mid" for i in range(3)]
    run(
        "sample",
        "--model",
        melody_run / "run",
        "-n",
        "1",
        "--bars",
        "8",
        "--through",
        inputs[0],
        "--through",
        inputs[1],
        "--window",
        "0",
        "--out",
        tmp_path / "s",
    )
    assert (tmp_path / "s" / "sample-001.mid").is_file()
    run(
        "interpolate",
        *inputs,
        "--window",
        "0",
        "--steps",
        "3",
        "--model",
        melody_run / "run",
        "--out",
        tmp_path / "i",
    )
    assert len(list((tmp_path / "i").glob("interp-0*.mid"))) == 5  # 3 + 3 points, one shared
    whole = read_midi(tmp_path / "i" / "interp-all.mid").tracks[0]
    assert whole.end.max() <= 5 * 32
    one = run("interpolate", inputs[0], "--out", tmp_path / "x", ok=False)
    assert one.exit_code == 1 and "at least two" in one.output
