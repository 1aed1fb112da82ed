"""The VAE core shared by the music and image models.

A Gaussian posterior head, the reparameterised sample, the analytic KL to N(0, I), free bits
and the beta schedule. Everything here is in nats unless a name says bits.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

LN2 = math.log(2.0)


class GaussianHead(nn.Module):
    """Dense heads from an encoding to a diagonal Gaussian posterior.

    `scale="softplus"` gives sigma = softplus(linear) as in the reference MusicVAE;
    `scale="logvar"` gives a log-variance head, with sigma = exp(0.5 * logvar).
    """

    def __init__(self, in_size: int, z_size: int, scale: str = "softplus", init_std: float = 0.001):
        super().__init__()
        if scale not in ("softplus", "logvar"):
            raise ValueError(f"unknown posterior scale {scale!r}")
        self.scale = scale
        self.mu = nn.Linear(in_size, z_size)
        self.sigma = nn.Linear(in_size, z_size)
        for layer in (self.mu, self.sigma):
            nn.init.normal_(layer.weight, std=init_std)
            nn.init.zeros_(layer.bias)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h: [batch, in_size] -> (mu, sigma), each [batch, z_size]."""
        mu = self.mu(h)
        raw = self.sigma(h)
        sigma = F.softplus(raw) if self.scale == "softplus" else torch.exp(0.5 * raw)
        return mu, sigma


def reparameterize(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps with eps ~ N(0, I); shapes [batch, z_size]."""
    return mu + sigma * torch.randn_like(sigma)


def kl_to_standard_normal(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) summed over z dimensions: [batch, z] -> [batch] nats."""
    var = sigma.pow(2)
    return 0.5 * (var + mu.pow(2) - 1.0 - torch.log(var.clamp_min(1e-20))).sum(dim=-1)


def free_bits_kl(kl: torch.Tensor, free_bits: float) -> torch.Tensor:
    """The KL cost after free bits, applied to each example's total KL: max(kl - fb*ln2, 0)."""
    return torch.clamp(kl - free_bits * LN2, min=0.0)


def beta_at(step: int, max_beta: float, beta_rate: float) -> float:
    """beta = max_beta * (1 - beta_rate ** step)."""
    return max_beta * (1.0 - beta_rate**step)


def sampling_probability_at(step: int, schedule: str, rate: float) -> float:
    """Probability of feeding the model's own sample instead of the truth at each step."""
    if schedule == "constant":
        return rate
    if schedule == "exponential":
        return 1.0 - rate**step
    if schedule == "inverse_sigmoid":
        return 1.0 - rate / (rate + math.exp(min(step / rate, 700.0)))
    raise ValueError(f"unknown sampling schedule {schedule!r}")


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between vectors a and b [z] at fractions t [k] -> [k, z].

    Falls back to linear interpolation when a and b are (anti)parallel.
    """
    t = t[:, None]
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-6 or (math.pi - omega).abs() < 1e-6:
        return (1 - t) * a + t * b
    s = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / s) * a + (torch.sin(t * omega) / s) * b
