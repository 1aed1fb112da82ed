import numpy as np
import pytest
import torch

from musicvae_py.configs import get_config
from musicvae_py.converters.drums import (
    CLASS_TO_PITCH,
    DRUM_CLASS_PITCHES,
    PITCH_TO_CLASS,
    drum_roll,
    extract_drum_windows,
    tokens_to_drum_notes,
)
from musicvae_py.converters.midi_io import read_midi
from musicvae_py.models.music_vae import MusicVAE
from tests.conftest import overfit, run, write_score

DRUMS = get_config("drums_2bar_tiny")
HIER = get_config("mel_16bar_hierdec_tiny")


def test_every_gm_pitch_in_the_table_maps_to_its_class_and_back():
    for drum_class, (_, pitches) in enumerate(DRUM_CLASS_PITCHES):
        for pitch in pitches:
            assert PITCH_TO_CLASS[pitch] == drum_class
        token = 1 << drum_class
        assert tokens_to_drum_notes(np.array([token])) == [(pitches[0], 0, 1)]
    assert CLASS_TO_PITCH == (36, 38, 42, 46, 45, 48, 50, 49, 51)
    assert len(PITCH_TO_CLASS) == sum(len(p) for _, p in DRUM_CLASS_PITCHES)  # no pitch twice


def test_drum_tokens_sum_class_bits_and_ignore_unmapped_pitches(tmp_path):
    hits = [(36, 0, 1), (35, 0, 1), (42, 0, 1), (38, 4, 5), (25, 8, 9), (51, 12, 13)]
    hits += [(36, s, s + 1) for s in range(16, 33, 4)]
    path = write_score(tmp_path / "d.mid", [{"notes": hits, "is_drum": True}])
    windows = extract_drum_windows(read_midi(path), DRUMS.data).windows
    first = windows[0]
    assert first[0] == 1 + 4  # kick (both kick pitches count once) + closed hi-hat
    assert first[4] == 2 and first[8] == 0 and first[12] == 256


def test_drum_roll_has_nine_bits_and_a_trailing_no_hit_bit():
    roll = drum_roll(torch.tensor([[0, 5, 511]]))
    assert roll.shape == (1, 3, 10)
    assert roll[0, 0].tolist() == [0] * 9 + [1]
    assert roll[0, 1].tolist() == [1, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    assert roll[0, 2].tolist() == [1] * 9 + [0]


def test_conductor_emits_one_embedding_per_bar_and_resets_the_core_state():
    model = MusicVAE(HIER).eval()
    z = torch.randn(3, 8)
    embeddings = model.conductor(z, 16)
    assert embeddings.shape == (3, 16, 16)
    tokens = torch.randint(0, 90, (3, 256))
    (logits,) = model.teacher_forced_logits(z, tokens)
    assert logits.shape == (3, 256, 90)
    # Bar 5 depends only on its embedding and on the last token of bar 4.
    changed = tokens.clone()
    changed[:, : 5 * 16 - 1] = torch.randint(0, 90, (3, 5 * 16 - 1))
    (again,) = model.teacher_forced_logits(z, changed)
    assert torch.allclose(logits[:, 80:], again[:, 80:], atol=1e-6)
    assert not torch.allclose(logits[:, :79], again[:, :79])
    (stepwise,), _ = model.autoregress(z, targets=tokens, sampling_probability=0.0)
    assert torch.allclose(stepwise, logits, atol=1e-5)


@pytest.mark.parametrize("config", [DRUMS, HIER], ids=["drums", "hierdec"])
def test_tiny_configs_overfit(config):
    torch.manual_seed(0)
    sizes = {"encoder_sizes": (64,), "decoder_sizes": (64,), "z_size": 16}
    if config.model.conductor_sizes:
        sizes["conductor_sizes"] = (64,)
    model = MusicVAE(config.replace(model=sizes))
    steps = config.data.window_steps
    # four windows, each one bar-long random pattern repeated, with holds or rests between
    alphabet = (
        torch.tensor([0, 1, 5, 37, 42, 66, 80, 89])
        if config is HIER
        else torch.tensor([0, 1, 5, 2, 256, 261, 4, 3])
    )
    bars = alphabet[torch.randint(0, 8, (4, 16))]
    bars[:, 1::2] = 0
    windows = bars.repeat(1, steps // 16)
    overfit(model, windows, steps=600)
    metrics = model.summarize_evaluation([model.evaluate_batch(windows, torch.Generator())])
    assert metrics["teacher_forced_accuracy"] >= 0.95
    if config is HIER:
        assert len(metrics["teacher_forced_accuracy_per_bar"]) == 16


def test_drums_end_to_end(tmp_path):
    corpus = tmp_path / "drums"
    corpus.mkdir()
    for i in range(5):
        beat = [(36, s, s + 1) for s in range(0, 96, 8)] + [(42, s, s + 1) for s in range(i, 96, 2)]
        write_score(corpus / f"beat{i}.mid", [{"notes": beat, "is_drum": True}])
    write_score(corpus / "melody.mid", [{"notes": [(60, 0, 4)]}])

    prepared = run(
        "prepare",
        corpus,
        "--out",
        tmp_path / "ds",
        "--config",
        "drums_2bar_tiny",
        "--valid-fraction",
        "0.4",
        "--workers",
        "1",
    )
    assert "no drums" in prepared.output
    run(
        "train",
        "--config",
        "drums_2bar_tiny",
        "--data",
        tmp_path / "ds",
        "--out",
        tmp_path / "run",
        "--steps",
        "4",
        "--eval-every",
        "4",
    )
    run("sample", "--model", tmp_path / "run", "-n", "2", "--out", tmp_path / "s", "--plot")
    track = read_midi(tmp_path / "s" / "sample-001.mid").tracks
    assert all(t.is_drum for t in track)
    run("encode", corpus / "beat0.mid", "--model", tmp_path / "run", "--window", "0")


def test_bundled_drum_and_16_bar_models_sample_valid_midi(tmp_path):
    run("sample", "--model", "drums_2bar", "-n", "2", "--seed", "0", "--out", tmp_path / "d")
    tracks = read_midi(tmp_path / "d" / "sample-001.mid").tracks
    assert tracks and all(t.is_drum for t in tracks)
    assert set(tracks[0].pitch.tolist()) <= set(CLASS_TO_PITCH)
    run(
        "sample", "--model", "mel_16bar_hierdec", "-n", "1", "--seed", "0", "-t", "0.8",
        "--out", tmp_path / "m",
    )  # fmt: skip
    (melody,) = read_midi(tmp_path / "m" / "sample-001.mid").tracks
    assert not melody.is_drum and len(melody) and melody.end.max() <= 16 * 16
    assert 21 <= melody.pitch.min() and melody.pitch.max() <= 108
