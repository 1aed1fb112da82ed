import math

import pytest
import torch
import torch.nn.functional as F

from musicvae_py.configs import Config, get_config
from musicvae_py.models.core import (
    beta_at,
    free_bits_kl,
    kl_to_standard_normal,
    sampling_probability_at,
    slerp,
)
from musicvae_py.models.music_vae import MusicVAE, reconstruction_loss
from musicvae_py.training.trainer import learning_rate_at
from tests.conftest import overfit

TINY = get_config("mel_2bar_tiny")


def test_kl_matches_closed_form_by_hand():
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    sigma = torch.tensor([[1.0, 2.0], [1.0, 1.0]])
    # 0.5 * (s^2 + m^2 - 1 - ln s^2) per dimension: (0.5) + (0.5 * (4 - 1 - ln 4))
    expected = torch.tensor([0.5 + 0.5 * (3 - math.log(4)), 0.0])
    assert torch.allclose(kl_to_standard_normal(mu, sigma), expected)


def test_free_bits_apply_to_the_total_kl():
    kl = torch.tensor([10.0, 40.0])
    free = 48 * math.log(2)  # 33.27 nats
    assert torch.allclose(free_bits_kl(kl, 48), torch.tensor([0.0, 40.0 - free]))


def test_schedules_match_the_reference_formulas():
    assert beta_at(0, 0.2, 0.99999) == 0.0
    assert beta_at(10_000, 0.2, 0.99999) == pytest.approx(0.2 * 0.0952, rel=1e-3)
    assert beta_at(5, 0.2, 0.0) == 0.2
    assert sampling_probability_at(0, "inverse_sigmoid", 1000) == pytest.approx(1 / 1001)
    assert sampling_probability_at(6908, "inverse_sigmoid", 1000) == pytest.approx(0.5, abs=1e-3)
    assert sampling_probability_at(7, "constant", 0.25) == 0.25
    assert sampling_probability_at(2, "exponential", 0.5) == 0.75
    small = get_config("mel_2bar_small")
    assert learning_rate_at(0, small) == pytest.approx(1e-3)
    assert learning_rate_at(10_000, small) == pytest.approx(3.74e-4, rel=1e-2)


def test_reconstruction_loss_sums_cross_entropy_over_steps():
    logits = torch.randn(2, 3, 5)
    tokens = torch.tensor([[0, 1, 4], [2, 2, 3]])
    manual = -sum(F.log_softmax(logits[0, t], -1)[tokens[0, t]] for t in range(3))
    assert reconstruction_loss(logits, tokens)[0].item() == pytest.approx(manual.item(), rel=1e-5)


def test_shapes_and_initial_posterior():
    model = MusicVAE(TINY)
    tokens = torch.randint(0, 90, (4, 32))
    mu, sigma = model.encode(tokens)
    assert mu.shape == sigma.shape == (4, 8)
    assert torch.allclose(sigma, torch.full_like(sigma, math.log(2)), atol=0.05)  # softplus(0)
    (tf,) = model.teacher_forced_logits(mu, tokens)
    assert tf.shape == (4, 32, 90)
    (logits,), sampled = model.autoregress(mu, temperature=0.0)
    assert logits.shape == (4, 32, 90) and sampled.shape == (4, 32, 1)
    assert model.generate(mu, temperature=0.0).shape == (4, 32)


def test_teacher_forcing_feeds_zeros_then_the_previous_truth():
    model = MusicVAE(TINY).eval()
    z = torch.randn(2, 8)
    tokens = torch.randint(0, 90, (2, 32))
    (tf,) = model.teacher_forced_logits(z, tokens)
    (stepwise,), _ = model.autoregress(z, targets=tokens, sampling_probability=0.0)
    assert torch.allclose(tf, stepwise, atol=1e-5)


def test_slerp_includes_endpoints_and_keeps_norm_between_equal_norms():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    path = slerp(a, b, torch.linspace(0, 1, 5))
    assert torch.allclose(path[0], a) and torch.allclose(path[-1], b)
    assert torch.allclose(path.norm(dim=1), torch.ones(5), atol=1e-6)


def test_tiny_model_overfits_a_handful_of_windows():
    torch.manual_seed(0)
    config = TINY.replace(model={"encoder_sizes": (64,), "decoder_sizes": (64,), "z_size": 16})
    model = MusicVAE(config)
    windows = torch.randint(2, 90, (8, 32))
    windows[:, 1::2] = 0  # eighth notes: onsets, then holds
    overfit(model, windows, steps=400)
    metrics = model.summarize_evaluation([model.evaluate_batch(windows, torch.Generator())])
    assert metrics["teacher_forced_accuracy"] >= 0.99


def test_config_round_trips_through_json():
    import json

    small = get_config("mel_2bar_small")
    assert Config.from_dict(json.loads(json.dumps(small.to_dict()))) == small
