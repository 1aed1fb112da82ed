"""Piano rolls and multitrack rolls: the converter both ways, the convolutional and recurrent
VAEs, and every command end to end on tiny configs."""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from musicvae_py.configs import ALL_FAMILIES, Config, RollDataConfig, get_config
from musicvae_py.converters.drums import CLASS_TO_PITCH
from musicvae_py.converters.midi_io import Track, read_midi, write_midi
from musicvae_py.converters.pianoroll import (
    FAMILIES,
    ONSET,
    SUSTAIN,
    VELOCITY,
    extract_roll_windows,
    family_of,
    roll_notelists,
    roll_to_notes,
    transpose_rolls,
)
from musicvae_py.data.prepare import convert_file, prepare_dataset
from musicvae_py.errors import ConfigError, ExtractionError
from musicvae_py.inference import TrainedModel
from musicvae_py.models import roll_vae
from musicvae_py.models.core import LN2, reparameterize
from musicvae_py.models.registry import build_model
from musicvae_py.models.roll_vae import (
    ConvRollVAE,
    RecurrentRollVAE,
    draw_cells,
    note_starts,
    paint_sustain,
    roll_inputs,
    roll_reconstruction_loss,
    velocity_loss,
)
from musicvae_py.training.checkpoint import bundled_models
from tests.conftest import overfit, run, write_score

CONV = get_config("pianoroll_2bar_conv_tiny")
RNN = get_config("pianoroll_2bar_rnn_tiny")
CONV1D = get_config("pianoroll_2bar_conv1d_tiny")  # the bundled form
MULTI = get_config("multitrack_1bar_conv_tiny")
# z kept at each of the 8 positions left by two stride-2 convolutions over 32 steps
LOCAL = CONV.replace(
    model={"conv_dims": 1, "local_latent": True, "conv_channels": (16, 16), "z_size": 16}
)
# each note's length drawn once from 4 duration features at the cell where it starts
DURATIONS = LOCAL.replace(model={"duration_features": 4})
ROLL = CONV.data  # pitches 48-71, 2-bar windows, 1-bar hop

# 4 bars: a chord, a repeated note, a note held across the bar-2 line, and an arpeggio
NOTES = [
    (48, 0, 8),
    (52, 0, 8),
    (55, 0, 8),
    (60, 0, 4),
    (60, 4, 8),  # the same pitch again at once: must stay a second note
    (64, 24, 40),  # sounds from bar 1 into bar 2, across the first window's end
    (67, 40, 42),
    (69, 42, 44),
    (71, 44, 64),
]


def window_at(extraction, start: int) -> np.ndarray:
    return extraction.windows[extraction.starts.index(start)]


def test_roll_planes_keep_repeated_notes_apart(tmp_path):
    path = write_score(tmp_path / "a.mid", [{"notes": NOTES}])
    extraction = extract_roll_windows(read_midi(path), ROLL)
    assert extraction.windows.shape[1:] == (32, 24, 2)
    assert extraction.starts == [0, 16, 32]
    first = window_at(extraction, 0)
    row = 60 - 48
    assert first[:8, row, ONSET].tolist() == [1, 0, 0, 0, 1, 0, 0, 0]
    assert first[:9, row, SUSTAIN].tolist() == [1] * 8 + [0]
    assert first[:, 64 - 48, SUSTAIN].sum() == 8  # steps 24-31 of the held note
    notes = [(n[0] + 48, n[1], n[2]) for n in roll_to_notes(first)]
    assert (60, 0, 4) in notes and (60, 4, 8) in notes
    assert (64, 24, 32) in notes  # cut at the window's end


def test_roll_round_trip_through_midi_joins_held_notes(tmp_path):
    path = write_score(tmp_path / "a.mid", [{"notes": NOTES}])
    extraction = extract_roll_windows(read_midi(path), ROLL)
    joined = np.concatenate([window_at(extraction, 0), window_at(extraction, 32)])
    tracks = roll_notelists(joined, ROLL, program=4, velocity=70)
    assert len(tracks) == 1 and tracks[0].program == 4
    assert sorted(tracks[0].notes) == sorted(NOTES)  # the held note is one note again
    write_midi(tmp_path / "back.mid", tracks)
    back = read_midi(tmp_path / "back.mid").tracks[0]
    written = sorted(zip(back.pitch.tolist(), back.start.tolist(), back.end.tolist(), strict=True))
    assert written == sorted(NOTES) and set(back.velocity.tolist()) == {70}
    alone = [(n[0] + 48, n[1], n[2]) for n in roll_to_notes(window_at(extraction, 32))]
    assert (64, 0, 8) in alone  # sustain at the first step: held from before the window


def test_roll_to_notes_needs_an_onset_except_at_the_first_step():
    roll = np.zeros((8, 3, 2), dtype=np.uint8)
    roll[2:5, 0, SUSTAIN] = 1  # sustain with no onset: ignored
    roll[3, 1, ONSET] = 1  # an onset with no sustain: one step
    roll[0:2, 2, SUSTAIN] = 1  # held from before the window
    assert roll_to_notes(roll) == [(2, 0, 2, 0), (1, 3, 4, 0)]


def test_tracks_merge_drums_drop_and_track_choice(tmp_path):
    path = write_score(
        tmp_path / "band.mid",
        [
            {"notes": [(60, 0, 32)], "program": 0, "name": "PIANO"},
            {"notes": [(50, 0, 32)], "program": 40, "name": "STRINGS"},
            {"notes": [(36, s, s + 1) for s in range(0, 32, 4)], "is_drum": True},
            {"notes": [(30, 0, 32), (100, 0, 32)], "program": 0},  # outside 48-71
        ],
    )
    merged = extract_roll_windows(read_midi(path), ROLL).windows[0]
    assert merged[..., SUSTAIN].any(axis=0).nonzero()[0].tolist() == [50 - 48, 60 - 48]
    chosen = convert_file(str(path), ROLL, ("piano",)).windows[0]
    assert chosen[..., SUSTAIN].any(axis=0).nonzero()[0].tolist() == [60 - 48]
    drums = write_score(tmp_path / "drums.mid", [{"notes": [(36, 0, 1)], "is_drum": True}])
    with pytest.raises(ExtractionError, match="no roll notes"):
        extract_roll_windows(read_midi(drums), ROLL)


def test_empty_windows_are_dropped_and_counted(tmp_path):
    notes = [(60, s, s + 4) for s in range(0, 32, 4)] + [(62, s, s + 4) for s in range(96, 128, 4)]
    path = write_score(tmp_path / "gap.mid", [{"notes": notes}])
    extraction = extract_roll_windows(read_midi(path), ROLL)
    assert extraction.starts == [0, 16, 80, 96]  # bars 2-5 are silent
    assert extraction.empty_windows == 3  # windows starting on bars 2, 3 and 4
    report = prepare_dataset([path], tmp_path / "ds", ROLL, valid_fraction=0.0, workers=1)
    assert report.empty_windows_dropped == 3 and report.windows_kept["train"] == 4
    printed = run(
        "prepare", path, "--out", tmp_path / "cli", "--config", CONV.name, "--valid-fraction", 0
    )
    assert "empty windows dropped: 3\n" in printed.output


def test_velocity_plane_and_track_velocity(tmp_path):
    cfg = dataclasses.replace(ROLL, velocity=True)
    path = write_score(tmp_path / "v.mid", [{"notes": [(60, 0, 4), (64, 4, 32)]}])
    window = extract_roll_windows(read_midi(path), cfg).windows[0]
    assert window.shape == (32, 24, 3)
    assert window[0, 12, VELOCITY] == 90 and window[1, 12, VELOCITY] == 0
    window[4, 16, VELOCITY] = 40
    assert roll_notelists(window, cfg)[0].velocity == 65  # the mean over the onsets
    assert cfg.window_problem(window[None]) is None
    window[0, 0, ONSET] = 2
    assert "onset and sustain" in cfg.window_problem(window[None])


def test_families_both_ways(tmp_path):
    cfg = MULTI.data  # piano, bass, lead and drums; pitches 36-83
    track = Track(0, False, *(np.zeros(0, dtype=np.int64),) * 4)
    assert family_of(dataclasses.replace(track, program=44), cfg) == "strings"
    assert family_of(dataclasses.replace(track, program=81), cfg) == "lead"
    assert family_of(dataclasses.replace(track, program=120), cfg) == "synth"
    assert family_of(dataclasses.replace(track, name=" Melody "), cfg) == "lead"
    assert family_of(dataclasses.replace(track, is_drum=True), cfg) == "drums"
    assert tuple(f.name for f in FAMILIES) == ALL_FAMILIES

    path = write_score(
        tmp_path / "band.mid",
        [
            {"notes": [(60, 0, 4), (64, 4, 8)], "program": 1},
            {"notes": [(40, 0, 16)], "program": 33},
            {"notes": [(72, 2, 6)], "program": 0, "name": "MELODY"},
            {"notes": [(55, 0, 16)], "program": 25},  # guitar: not a family of this config
            {"notes": [(36, 0, 1), (42, 2, 3), (44, 4, 5)], "is_drum": True},
        ],
    )
    window = extract_roll_windows(read_midi(path), cfg).windows[0]
    assert window.shape == (16, 3 * 48 + 9, 2)
    sounding = window[..., SUSTAIN].any(axis=0).nonzero()[0].tolist()
    # piano rows 0-47, bass 48-95, lead 96-143, drums 144-152 (kick, closed hi-hat)
    assert sounding == [60 - 36, 64 - 36, 48 + 40 - 36, 96 + 72 - 36, 144, 146]
    tracks = {t.name: t for t in roll_notelists(window, cfg, program=7)}
    assert set(tracks) == {"piano", "bass", "lead", "drums"}
    assert [tracks[n].program for n in ("piano", "bass", "lead")] == [0, 33, 73]
    assert tracks["piano"].notes == [(60, 0, 4), (64, 4, 8)]
    assert tracks["lead"].notes == [(72, 2, 6)]
    assert tracks["drums"].is_drum
    assert tracks["drums"].notes == [(36, 0, 1), (CLASS_TO_PITCH[2], 2, 3), (42, 4, 5)]


def test_bad_family_configs_are_refused():
    with pytest.raises(ConfigError, match="unknown instrument family 'kazoo'"):
        RollDataConfig(kind="multitrack", families=("kazoo",))
    with pytest.raises(ConfigError, match="TRACK=FAMILY"):
        RollDataConfig(kind="multitrack", families=("piano",), track_families=("melody",))


def test_transposition_stays_in_range_and_leaves_drums():
    cfg = dataclasses.replace(MULTI.data, transpose=3)
    roll = torch.zeros(200, 16, cfg.rows, 2, dtype=torch.long)
    roll[:, 0, 1, :] = 1  # piano pitch 37: one semitone of room below
    roll[:, 0, 48 + 40, :] = 1  # bass pitch 76
    roll[:, 0, 144, :] = 1  # a kick
    moved = transpose_rolls(roll, cfg, torch.Generator().manual_seed(0))
    shifts = moved[:, 0, :48, ONSET].argmax(dim=1) - 1
    assert set(shifts.tolist()) == {-1, 0, 1, 2, 3}
    for i, shift in enumerate(shifts.tolist()):
        assert moved[i, 0, 48 + 40 + shift, ONSET] == 1  # the bass moves with the piano
    assert torch.equal(moved[:, :, 144:], roll[:, :, 144:])
    assert moved.sum() == roll.sum()


@pytest.mark.parametrize(
    "config",
    [
        CONV,
        CONV.replace(model={"conv_dims": 1}),
        LOCAL,
        RNN,
        MULTI,
        MULTI.replace(model={"conv_dims": 1}),
        CONV.replace(data={"velocity": True}),
        RNN.replace(data={"velocity": True}),
        DURATIONS,
        MULTI.replace(model={"duration_features": 3}, data={"velocity": True}),
    ],
    ids=[
        "conv2d",
        "conv1d",
        "conv1d-local",
        "rnn",
        "multi2d",
        "multi1d",
        "conv-velocity",
        "rnn-velocity",
        "durations",
        "multi2d-durations-velocity",
    ],
)
def test_shapes_of_both_families(config):
    torch.manual_seed(0)
    model = build_model(config)
    assert isinstance(model, RecurrentRollVAE if "rnn" in config.name else ConvRollVAE)
    shape = config.data.window_shape
    rolls = torch.randint(0, 2, (3, *shape))
    mu, sigma = model.encode(rolls)
    z_size = config.model.z_size
    assert mu.shape == sigma.shape == (3, z_size)
    x = roll_inputs(rolls)
    planes = shape[-1] + config.model.duration_features
    assert model.decode_logits(mu, x).shape == (3, *shape[:-1], planes)
    drawn = model.generate(torch.randn(3, z_size), 1.0, torch.Generator().manual_seed(1))
    assert drawn.shape == (3, *shape) and drawn.dtype == torch.long
    assert drawn[..., :2].max() <= 1
    if config.data.velocity:
        assert drawn[..., VELOCITY].max() <= 127
        assert torch.equal(drawn[..., VELOCITY] > 0, drawn[..., ONSET] > 0)
    first = rolls[:, -1].reshape(3, -1)  # what a joined walk hands on: the last frame
    assert model.generate(mu, 0.0, first_tokens=first).shape == (3, *shape)


def test_local_latent_describes_its_own_stretch_of_the_window():
    torch.manual_seed(0)
    model = build_model(LOCAL).eval()
    rolls = handful_of_rolls(LOCAL.data)
    mu, _ = model.encode(rolls)
    changed = rolls.clone()
    changed[:, 28:] = 0  # silence the last 4 of 32 steps
    mu_changed, _ = model.encode(changed)
    # z is position-major, 2 of 16 dimensions per 4-step stretch; the receptive field of two
    # kernel-3 stride-2 convolutions reaches one stretch back
    moved = (mu_changed - mu).abs().amax(dim=0)
    assert torch.all(moved[:12] == 0) and torch.all(moved[14:] > 0)
    with torch.no_grad():
        before = model.decode_logits(mu)
        after = model.decode_logits(torch.cat([mu[:, :14], mu[:, 14:] + 3.0], dim=1))
    steps_moved = (after - before).abs().flatten(2).amax(dim=(0, 2))
    assert torch.all(steps_moved[:24] == 0) and torch.all(steps_moved[28:] > 0)
    with pytest.raises(ConfigError, match="does not split evenly over the 8 positions"):
        build_model(LOCAL.replace(model={"z_size": 12}))


@pytest.mark.parametrize("velocity", [False, True], ids=["plain", "velocity"])
def test_causal_context_reads_only_the_frames_before(velocity):
    config = CONV.replace(model={"conv_dims": 1, "context_steps": 3}, data={"velocity": velocity})
    torch.manual_seed(0)
    model = build_model(config).eval()
    assert model.teacher_forced
    with torch.no_grad():
        for p in model.context.parameters():  # trained weights are not zero
            p.normal_(0.0, 0.3)
        z = torch.randn(3, 8)
        g = torch.Generator().manual_seed(2)
        cells, logits = model.decode(z, 1.0, g)
        # fed the frames it drew, teacher forcing gives the logits it drew them from
        forced = model.decode_logits(z, roll_inputs(cells))
        assert torch.allclose(forced, logits, atol=1e-5)
        # a frame changes the logits of the 3 frames after it and of no other
        changed = cells.clone()
        changed[:, 10, :, :2] = 1 - changed[:, 10, :, :2]
        moved = (model.decode_logits(z, roll_inputs(changed)) - forced).abs()
        assert moved[..., ONSET].max() == 0  # where notes start is z's alone
        if velocity:
            assert moved[..., VELOCITY].max() == 0
        moved = moved.flatten(2).amax(dim=(0, 2))
        assert torch.all(moved[:11] == 0) and torch.all(moved[11:14] > 0)
        assert torch.all(moved[14:] == 0)
        # the frame a joined walk hands on stands before the first
        first = cells[:, -1].reshape(3, -1)
        _, joined = model.decode(z, 0.0, first_frame=first)
        _, alone = model.decode(z, 0.0)
        assert not torch.allclose(joined[:, 0], alone[:, 0])


def test_fitted_prior_is_the_gaussian_of_the_training_latents(monkeypatch):
    config = CONV.replace(model={"prior": "fitted"})
    torch.manual_seed(0)
    model = build_model(config)
    eps = torch.randn(5, 8)
    assert torch.allclose(model.from_standard_normal(eps), eps, atol=1e-5)  # N(0, I) at first
    monkeypatch.setattr(roll_vae, "PRIOR_MOMENTUM", 1.0)  # keep only the last batch's moments
    rolls = torch.randint(0, 2, (512, *config.data.window_shape))
    torch.manual_seed(3)
    model.training_loss(rolls, step=0)
    torch.manual_seed(3)
    with torch.no_grad():
        z = reparameterize(*model.encode(rolls))
        drawn = model.from_standard_normal(torch.randn(40000, 8))
    assert torch.allclose(model.prior_mean, z.mean(dim=0), atol=1e-5)
    assert torch.allclose(drawn.mean(dim=0), z.mean(dim=0), atol=0.02)
    target = torch.cov(z.T, correction=0)
    assert not torch.allclose(target, torch.eye(8), atol=0.1)
    assert torch.allclose(torch.cov(drawn.T), target, atol=0.02 * target.diag().max().item())
    assert torch.equal(build_model(CONV).from_standard_normal(eps), eps)
    with pytest.raises(ConfigError, match="prior must be standard or fitted"):
        build_model(CONV.replace(model={"prior": "learnt"}))


def test_loss_terms_match_hand_computed_values():
    logits = torch.zeros(1, 2, 1, 3)
    x = torch.tensor([[[[1.0, 1.0, 0.5]], [[0.0, 1.0, 0.0]]]])
    # zero logits: ln 2 per onset and sustain cell, 4 cells
    assert roll_reconstruction_loss(logits, x).item() == pytest.approx(4 * LN2)
    # velocity: only at the onset (step 0): -(0.5 ln 0.5 + 0.5 ln 0.5) = ln 2
    assert velocity_loss(logits, x).item() == pytest.approx(LN2)
    logits = torch.tensor([[[[2.0, -1.0, 0.0]], [[0.5, 3.0, 0.0]]]])
    sig = torch.sigmoid
    by_hand = -(
        math.log(sig(torch.tensor(2.0)))  # onset 1
        + math.log(sig(torch.tensor(-1.0)))  # sustain 1
        + math.log(1 - sig(torch.tensor(0.5)))  # onset 0
        + math.log(sig(torch.tensor(3.0)))  # sustain 1
    )
    assert roll_reconstruction_loss(logits, x).item() == pytest.approx(by_hand, rel=1e-5)

    config = CONV.replace(train={"free_bits": 2.0, "max_beta": 0.5, "beta_rate": 0.0})
    torch.manual_seed(0)
    model = build_model(config)
    rolls = torch.randint(0, 2, (4, *config.data.window_shape))
    torch.manual_seed(5)
    loss, scalars = model.training_loss(rolls, step=3)
    torch.manual_seed(5)
    mu, sigma = model.encode(rolls)
    z = reparameterize(mu, sigma)
    bce = F.binary_cross_entropy_with_logits(
        model.decode_logits(z), rolls.float(), reduction="none"
    )
    kl = 0.5 * (sigma**2 + mu**2 - 1 - torch.log(sigma**2)).sum(dim=1)
    expected = bce.flatten(1).sum(1).mean() + 0.5 * torch.clamp(kl - 2 * LN2, min=0).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert scalars["kl_bits"] == pytest.approx((kl.mean() / LN2).item(), rel=1e-5)


def test_note_starts_and_painted_sustain_invert_each_other(tmp_path):
    path = write_score(tmp_path / "a.mid", [{"notes": NOTES}])
    windows = torch.from_numpy(extract_roll_windows(read_midi(path), ROLL).windows).long()
    starts, durations = note_starts(roll_inputs(windows))
    first = windows[0]  # the chord, the repeated note cut by its second onset, a held note
    assert durations[0][starts[0]].tolist() == [8, 8, 8, 4, 4, 8]
    assert starts[2, 0].nonzero()[:, 0].tolist() == [64 - 48]  # held from before the window
    assert durations[2, 0, 64 - 48] == 8
    assert torch.equal(paint_sustain(starts, durations), windows[..., SUSTAIN])
    assert torch.equal(first[..., ONSET] > 0, starts[0] & (first[..., ONSET] > 0))


def test_note_duration_loss_and_draws_by_hand():
    torch.manual_seed(0)
    model = build_model(DURATIONS.replace(data={"window_steps": 4}, model={"z_size": 8}))
    head = model.durations.net[-1]
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)  # every possible length equally likely
    x = torch.zeros(1, 4, 24, 2)
    x[0, 0:2, 5] = torch.tensor([[1.0, 1.0], [0.0, 1.0]])  # a 2-step note at step 0
    x[0, 2, 5] = torch.tensor([1.0, 1.0])  # a 1-step note at step 2
    x[0, 0, 9, SUSTAIN] = 1.0  # held from before the window for 1 step
    logits = torch.zeros(1, 4, 24, 2 + 4)
    # ln 2 for every first-step held cell and every onset cell but the two under a sounding
    # note (row 5 at step 1, row 9 at step 0); lengths 1-4 at step 0, 1-2 at step 2
    expected = (24 + 4 * 24 - 2) * LN2 + math.log(4) + math.log(2) + math.log(4)
    assert model.reconstruction_loss(logits, x).item() == pytest.approx(expected, rel=1e-5)

    with torch.no_grad():
        head.bias.copy_(torch.tensor([0.0, 0.0, 3.0, 0.0]))  # 3 steps most likely
    logits = torch.full((3000, 4, 24, 6), -30.0)
    logits[:, 0, 2, ONSET] = 30.0  # a note starts at step 0 of row 2 in every window
    cells = model.draw(logits, 0.0)
    assert cells[0, :, 2, SUSTAIN].tolist() == [1, 1, 1, 0]
    logits[:, 2, 2, ONSET] = 30.0  # no onset while the row's note sounds
    assert roll_to_notes(model.draw(logits, 0.0)[0].numpy()) == [(2, 0, 3, 0)]
    logits[:, 3, 2, ONSET] = 30.0  # but as soon as it ends: 1 step left in the window
    assert roll_to_notes(model.draw(logits, 0.0)[0].numpy()) == [(2, 0, 3, 0), (2, 3, 4, 0)]
    logits[:, 3, 2, ONSET] = -30.0
    logits[:, 2, 2, ONSET] = -30.0
    lengths = model.draw(logits, 1.0, torch.Generator().manual_seed(0))[:, :, 2, SUSTAIN]
    share = torch.bincount(lengths.sum(dim=1), minlength=5)[1:].float() / 3000
    p = torch.softmax(torch.tensor([0.0, 0.0, 3.0, 0.0]), dim=0)
    assert torch.allclose(share, p, atol=0.02), share


def test_duration_noise_moves_only_the_duration_features_in_training():
    torch.manual_seed(0)
    model = build_model(DURATIONS.replace(model={"duration_noise": 1.0}))
    z = torch.randn(3, model.z_size)
    clean = model.decode_logits(z)
    noisy = model.training_logits(z, roll_inputs(torch.zeros(3, *ROLL.window_shape)))
    assert torch.equal(noisy[..., :2], clean[..., :2])
    assert not torch.allclose(noisy[..., 2:], clean[..., 2:])
    quiet = build_model(DURATIONS)
    assert torch.equal(quiet.training_logits(z, None), quiet.decode_logits(z))


def test_note_durations_refuse_what_they_cannot_combine_with():
    with pytest.raises(ConfigError, match="do not combine"):
        build_model(DURATIONS.replace(model={"context_steps": 2}))
    with pytest.raises(ConfigError, match="for roll_conv models"):
        build_model(RNN.replace(model={"duration_features": 4}))


def test_temperature_draws_bernoulli_and_zero_thresholds():
    logits = torch.full((20000, 2), math.log(0.3 / 0.7))
    assert draw_cells(logits, 0.0).sum() == 0
    g = torch.Generator().manual_seed(0)
    assert draw_cells(logits, 1.0, g).float().mean().item() == pytest.approx(0.3, abs=0.01)
    # at T = 2 the probability is sigmoid(logit / 2)
    hot = torch.sigmoid(logits[0, 0] / 2).item()
    assert draw_cells(logits, 2.0, g).float().mean().item() == pytest.approx(hot, abs=0.01)


def handful_of_rolls(cfg) -> torch.Tensor:
    """Four distinct 2-bar rolls: chords, arpeggios and repeated notes."""
    rolls = torch.zeros(4, *cfg.window_shape, dtype=torch.long)
    for i in range(4):
        for k, step in enumerate(range(0, 32, 4 + 2 * (i % 2))):
            pitch = (3 * i + 4 * k) % 24
            rolls[i, step, pitch, ONSET] = 1
            rolls[i, step : step + 3, pitch, SUSTAIN] = 1
    return rolls


@pytest.mark.parametrize(
    "config, steps",
    [(CONV, 300), (LOCAL, 300), (DURATIONS, 600), (RNN, 300)],
    ids=["conv", "conv-local", "durations", "rnn"],
)
def test_tiny_model_overfits_a_handful_of_rolls(config, steps):
    torch.manual_seed(0)
    model = build_model(config)
    rolls = handful_of_rolls(config.data)
    overfit(model, rolls, steps=steps)
    model.eval()
    metrics = model.summarize_evaluation(
        [model.evaluate_batch(rolls, torch.Generator().manual_seed(0))]
    )
    assert metrics["onset_f1"] > 0.95 and metrics["frame_f1"] > 0.95, metrics


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Piano pieces (with a drum track to ignore), a prepared dataset and a tiny run."""
    root = tmp_path_factory.mktemp("rolls")
    folder = root / "corpus"
    folder.mkdir()
    for i in range(6):
        chords = [(48 + (i + k) % 12 + o, 8 * k, 8 * k + 6) for k in range(8) for o in (0, 4, 7)]
        melody = [(62 + (i + k) % 9, 2 * k, 2 * k + 2) for k in range(32)]
        drums = [(36, s, s + 1) for s in range(0, 64, 4)]
        write_score(
            folder / f"p{i}.mid",
            [
                {"notes": chords},
                {"notes": melody, "program": 40},
                {"notes": drums, "is_drum": True},
            ],
        )
    write_score(folder / "drums.mid", [{"notes": [(36, 0, 1)], "is_drum": True}])
    one = write_score(root / "one.mid", [{"notes": NOTES[:5] + [(71, 8, 32)]}])  # 2 bars
    two = write_score(root / "two.mid", [{"notes": [(50, 0, 16), (55, 16, 32), (62, 8, 12)]}])
    prepared = run(
        "prepare", folder, "--out", root / "ds", "--config", CONV.name,
        "--valid-fraction", "0.3", "--workers", "1",
    )  # fmt: skip
    runs = {}
    for config in (CONV, CONV1D, RNN):
        runs[config.name] = root / config.name
        run(
            "train", "--config", config.name, "--data", root / "ds", "--out", runs[config.name],
            "--steps", "4", "--log-every", "2", "--eval-every", "4", "--checkpoint-every", "4",
        )  # fmt: skip
    return {"root": root, "ds": root / "ds", "runs": runs, "one": one, "two": two,
            "prepared": prepared.output}  # fmt: skip


def test_prepare_reports_rolls(corpus):
    assert "files read:          6 of 7" in corpus["prepared"]
    assert "no roll notes" in corpus["prepared"]
    meta = json.loads((corpus["ds"] / "meta.json").read_text())
    assert meta["data"]["kind"] == "pianoroll"
    assert meta["report"]["empty_windows_dropped"] == 0
    stored = np.load(corpus["ds"] / "train.npy")
    assert stored.dtype == np.uint8 and stored.shape[1:] == (32, 24, 2)


@pytest.mark.parametrize("name", [CONV.name, CONV1D.name, RNN.name])
def test_every_command_end_to_end(corpus, tmp_path, name):
    model, ds = corpus["runs"][name], corpus["ds"]
    metrics = json.loads(run("evaluate", "--model", model, "--data", ds, "--json").output)
    assert {"onset_precision", "onset_recall", "onset_f1", "frame_f1", "elbo_nats"} <= set(metrics)
    assert 0 <= metrics["onset_f1"] <= 1 and metrics["elbo_nats"] < 0
    table = run("evaluate", "--model", model, "--data", ds).output
    assert "onset_f1" in table

    out = tmp_path / "s"
    run("sample", "--model", model, "-n", "2", "--seed", "1", "-t", "1", "--out", out, "--plot")
    assert read_midi(out / "sample-001.mid").qpm == pytest.approx(120)
    assert Image.open(out / "sample-001.png").size[0] > 100
    run("sample", "--model", model, "-n", "1", "--bars", "4", "--seed", "1", "--out", tmp_path)

    run(
        "interpolate", corpus["one"], corpus["two"], "--model", model, "--window", "0",
        "--steps", "3", "--out", tmp_path / "i", "--seed", "0",
    )  # fmt: skip
    names = sorted(p.name for p in (tmp_path / "i").glob("*.mid"))
    assert names == ["interp-00.mid", "interp-01.mid", "interp-02.mid", "interp-all.mid"]

    run("reconstruct", corpus["one"], "--model", model, "--out", tmp_path / "r.mid", "-t", "0")
    assert (tmp_path / "r.mid").is_file()
    z_size = get_config(name).model.z_size
    record = json.loads(run("encode", corpus["one"], "--model", model).output)
    assert len(record["mu"]) == z_size
    run("encode", corpus["one"], "--model", model, "--out", tmp_path / "z.npy")
    assert np.load(tmp_path / "z.npy").shape == (3, z_size)


def test_export_keeps_the_fitted_prior_exact(corpus, tmp_path):
    from safetensors.torch import load_file

    run_dir = corpus["runs"][CONV1D.name]
    run("export", run_dir, tmp_path / "m", "--half")
    weights = load_file(str(tmp_path / "m" / "model.safetensors"))
    assert weights["prior_moment"].dtype == torch.float32
    assert weights["durations.net.0.weight"].dtype == torch.float16
    trained, exported = TrainedModel.load(run_dir), TrainedModel.load(tmp_path / "m")
    assert not torch.equal(trained.model.prior_mean, torch.zeros(16))  # moved in training
    drawn = [m.prior_sample(4, torch.Generator().manual_seed(0)) for m in (trained, exported)]
    assert torch.equal(*drawn)


def test_reconstruction_of_a_trained_model_matches_its_input(corpus):
    model = TrainedModel.load(corpus["runs"][CONV.name])
    window = model.windows_from_midi(corpus["one"]).pick(0)
    assert window.shape == (1, 32, 24, 2)
    again = model.reconstruct(window, temperature=0.0)
    assert again.shape == window.shape and set(np.unique(again)) <= {0, 1}


def test_multitrack_commands_write_a_track_per_family(tmp_path):
    folder = tmp_path / "band"
    folder.mkdir()
    for i in range(4):
        write_score(
            folder / f"b{i}.mid",
            [
                {"notes": [(60 + i, s, s + 2) for s in range(0, 32, 2)], "program": 0},
                {"notes": [(40 + i, s, s + 4) for s in range(0, 32, 4)], "program": 34},
                {"notes": [(36, s, s + 1) for s in range(0, 32, 4)], "is_drum": True},
            ],
        )
    run("prepare", folder, "--out", tmp_path / "ds", "--config", MULTI.name, "--workers", "1")
    run(
        "train", "--config", MULTI.name, "--data", tmp_path / "ds", "--out", tmp_path / "run",
        "--steps", "2", "--eval-every", "2", "--checkpoint-every", "2",
    )  # fmt: skip
    model = TrainedModel.load(tmp_path / "run")
    rolls = torch.zeros(1, *MULTI.data.window_shape, dtype=torch.long)
    rolls[0, 0, 10, :] = rolls[0, 0, 48 + 5, :] = rolls[0, 0, 144, :] = 1
    model.save_midi(rolls[0].numpy(), tmp_path / "band.mid")
    written = read_midi(tmp_path / "band.mid")
    assert [(t.name, t.program, t.is_drum) for t in written.tracks] == [
        ("piano", 0, False),
        ("bass", 33, False),
        ("drums", 0, True),
    ]
    run("sample", "--model", tmp_path / "run", "-n", "1", "-t", "1", "--out", tmp_path / "s")
    assert (tmp_path / "s" / "sample-001.mid").is_file()


def test_configs_are_registered_and_round_trip():
    for name in ("pianoroll_2bar_conv", "pianoroll_2bar_conv_global", "pianoroll_2bar_rnn",
                 "multitrack_1bar_conv", "multitrack_4bar_conv"):  # fmt: skip
        config = get_config(name)
        assert Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config
        assert build_model(config) is not None
    assert get_config("multitrack_4bar_conv").data.window_shape == (64, 8 * 72 + 9, 2)
    with pytest.raises(ConfigError, match="whole 32-step windows"):
        build_model(CONV).generate(torch.zeros(1, 8), steps=16)


POP909 = Path("/work/shared/datasets/midi/pop909/001.mid")


@pytest.mark.skipif(not POP909.is_file(), reason="the shared POP909 files are absent")
def test_pop909_piano_track_gives_non_empty_windows():
    cfg = get_config("pianoroll_2bar_conv").data
    result = convert_file(str(POP909), cfg, ("PIANO",))
    assert result.windows is not None and len(result.windows) > 10
    assert result.windows[..., :2].reshape(len(result.windows), -1).any(axis=1).all()
    notes = roll_to_notes(result.windows[0])
    assert notes and all(0 <= row < 88 for row, *_ in notes)


def test_bundled_piano_roll_model_samples():
    if "pianoroll_2bar" not in bundled_models():
        pytest.skip("no bundled pianoroll_2bar model")
    model = TrainedModel.load("pianoroll_2bar")
    rolls = model.sample(2, temperature=1.0, seed=0)
    assert rolls.shape == (2, 32, 88, 2)
    assert model.tracks(rolls[0])[0].notes
