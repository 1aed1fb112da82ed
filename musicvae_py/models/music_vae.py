"""MusicVAE over event tokens: a bidirectional LSTM encoder and an autoregressive categorical
LSTM decoder conditioned on z at every step.

Shapes: tokens are long [batch, steps]; logits are [batch, steps, classes]; z is [batch, z_size].
"""

import torch
import torch.nn.functional as F
from torch import nn

from musicvae_py.configs import Config
from musicvae_py.converters.drums import drum_roll
from musicvae_py.data.dataset import transpose_tokens
from musicvae_py.errors import ConfigError
from musicvae_py.models.core import (
    LN2,
    GaussianHead,
    beta_at,
    free_bits_kl,
    kl_to_standard_normal,
    reparameterize,
    sampling_probability_at,
)
from musicvae_py.models.lstm import BidirectionalLstmEncoder, Conductor, LstmDecoder


class MusicVAE(nn.Module):
    """MusicVAE for one categorical token stream (melody or drums), with a flat decoder or a
    hierarchical one (a conductor emitting one embedding per bar, each re-initialising the
    core decoder and read beside its inputs for that bar)."""

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.num_classes = config.data.num_classes
        self.steps = config.data.window_steps
        m = config.model
        self.encoder = BidirectionalLstmEncoder(config.data.input_size, m.encoder_sizes)
        self.posterior = GaussianHead(self.encoder.output_size, m.z_size)
        self.conductor: Conductor | None = None
        cond_size = m.z_size
        if m.conductor_sizes:
            if self.steps % m.bar_steps:
                raise ConfigError(
                    f"config {config.name}: {self.steps} steps is not a whole number of "
                    f"{m.bar_steps}-step bars"
                )
            self.conductor = Conductor(m.z_size, m.conductor_sizes)
            cond_size = self.conductor.output_size
        self.decoder = LstmDecoder(self.num_classes, cond_size, m.decoder_sizes, self.num_classes)

    @property
    def z_size(self) -> int:
        return self.config.model.z_size

    def one_hot(self, tokens: torch.Tensor) -> torch.Tensor:
        """int [batch, steps] -> float [batch, steps, classes]."""
        return F.one_hot(tokens.long(), self.num_classes).float()

    def encoder_inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """long [batch, steps] -> float [batch, steps, input_size]."""
        if self.config.data.kind == "drums":
            return drum_roll(tokens)
        return self.one_hot(tokens)

    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens [batch, steps] -> posterior (mu, sigma), each [batch, z_size]."""
        return self.posterior(self.encoder(self.encoder_inputs(tokens)))

    def _segments(self, z: torch.Tensor, steps: int) -> tuple[torch.Tensor, int]:
        """The conditioning of each decoded segment: z itself for a flat decoder ([batch, 1,
        z_size]), else one conductor embedding per bar ([batch, bars, size]); and its length."""
        if self.conductor is None:
            return z[:, None, :], steps
        bar = self.config.model.bar_steps
        return self.conductor(z, -(-steps // bar)), bar

    def teacher_forced_logits(self, z: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Logits [batch, steps, classes] when the decoder reads the true previous tokens.

        Every segment starts from its own initial state; its first input is the last token of
        the segment before (zeros for the first), so all segments run as one batch.
        """
        batch, steps = tokens.shape
        inputs = F.pad(self.one_hot(tokens[:, :-1]), (0, 0, 1, 0))  # zeros, then truth
        cond, length = self._segments(z, steps)
        segments = cond.shape[1]
        inputs = inputs.reshape(batch * segments, length, self.num_classes)
        cond = cond.reshape(batch * segments, -1)
        logits, _ = self.decoder(inputs, cond, self.decoder.init_state(cond))
        return logits.reshape(batch, steps, self.num_classes)

    def autoregress(
        self,
        z: torch.Tensor,
        steps: int | None = None,
        temperature: float = 1.0,
        targets: torch.Tensor | None = None,
        sampling_probability: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode step by step, feeding back the model's own choices.

        At each step the next input is the sampled token (argmax when temperature <= 0), or,
        with probability 1 - sampling_probability, the target token. Returns
        (logits [batch, steps, classes], tokens [batch, steps]).
        """
        steps = steps or self.steps
        batch = z.shape[0]
        cond, length = self._segments(z, steps)
        x = z.new_zeros(batch, 1, self.num_classes)
        all_logits, all_tokens = [], []
        for t in range(steps):
            if t % length == 0:  # a new segment: state from its conditioning vector
                segment = cond[:, t // length]
                state = self.decoder.init_state(segment)
            logits, state = self.decoder(x, segment, state)
            logits = logits[:, 0]
            if temperature <= 0:
                token = logits.argmax(dim=-1)
            else:
                probs = torch.softmax(logits.float() / temperature, dim=-1)
                token = torch.multinomial(probs, 1, generator=generator)[:, 0]
            all_logits.append(logits)
            all_tokens.append(token)
            fed = token
            if targets is not None and sampling_probability < 1.0:
                use_own = torch.rand(batch, generator=generator) < sampling_probability
                fed = torch.where(use_own, token, targets[:, t])
            x = self.one_hot(fed)[:, None, :]
        return torch.stack(all_logits, dim=1), torch.stack(all_tokens, dim=1)

    def generate(
        self,
        z: torch.Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        steps: int | None = None,
    ) -> torch.Tensor:
        """Decode z [batch, z_size] into tokens long [batch, steps]; temperature 0 is greedy."""
        return self.autoregress(z, steps, temperature, generator=generator)[1]

    def augment(self, tokens: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Training-time transposition of a batch, long [batch, steps]."""
        d = self.config.data
        return transpose_tokens(tokens, d.transpose, d.num_classes, generator)

    def training_loss(
        self, tokens: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The reference objective: mean over the batch of the reconstruction cross-entropy
        summed over steps, plus beta times the KL beyond the free bits."""
        t = self.config.train
        mu, sigma = self.encode(tokens)
        z = reparameterize(mu, sigma)
        p = sampling_probability_at(step, t.sampling_schedule, t.sampling_rate)
        if p > 0:
            logits, _ = self.autoregress(z, targets=tokens, sampling_probability=p)
        else:
            logits = self.teacher_forced_logits(z, tokens)
        r_loss = reconstruction_loss(logits, tokens)
        kl = kl_to_standard_normal(mu, sigma)
        beta = beta_at(step, t.max_beta, t.beta_rate)
        loss = r_loss.mean() + beta * free_bits_kl(kl, t.free_bits).mean()
        with torch.no_grad():
            accuracy = (logits.argmax(-1) == tokens).float().mean().item()
        return loss, {
            "loss": loss.item(),
            "r_loss": r_loss.mean().item(),
            "kl_bits": (kl.mean() / LN2).item(),
            "beta": beta,
            "p_sample": p,
            "accuracy": accuracy,
        }

    @torch.no_grad()
    def evaluate_batch(self, tokens: torch.Tensor, generator: torch.Generator) -> dict:
        """Sums over one held-out batch; `summarize_evaluation` turns them into metrics.

        Teacher-forced and fully sampled accuracy (the decoder reads its own temperature-1
        samples), per-class counts, and the ELBO terms in nats (beta 1, no free bits).
        """
        mu, sigma = self.encode(tokens)
        eps = torch.randn(mu.shape, generator=generator)
        z = mu + sigma * eps
        tf_logits = self.teacher_forced_logits(z, tokens)
        sampled_logits, _ = self.autoregress(z, temperature=1.0, generator=generator)
        r_loss = reconstruction_loss(tf_logits, tokens)
        kl = kl_to_standard_normal(mu, sigma)
        tf_hit = tf_logits.argmax(-1) == tokens
        sampled_hit = sampled_logits.argmax(-1) == tokens
        classes = self.num_classes
        bar = self.config.model.bar_steps
        bars = tokens.shape[1] // bar
        return {
            "bar_tf_correct": tf_hit[:, : bars * bar].reshape(len(tokens), bars, bar).sum((0, 2)),
            "bar_sampled_correct": sampled_hit[:, : bars * bar]
            .reshape(len(tokens), bars, bar)
            .sum((0, 2)),
            "examples": len(tokens),
            "steps": tokens.numel(),
            "tf_correct": tf_hit.sum().item(),
            "sampled_correct": sampled_hit.sum().item(),
            "class_total": torch.bincount(tokens.flatten(), minlength=classes),
            "class_correct": torch.bincount(tokens[tf_hit], minlength=classes),
            "r_loss": r_loss.sum().item(),
            "kl": kl.sum().item(),
        }

    @staticmethod
    def summarize_evaluation(parts: list[dict]) -> dict[str, float]:
        """Combine `evaluate_batch` sums into metrics (accuracies in [0, 1], nats, bits)."""
        return summarize_evaluation(parts)


def reconstruction_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Cross-entropy summed over steps: logits [batch, steps, classes] -> [batch] nats."""
    ce = F.cross_entropy(logits.float().transpose(1, 2), tokens, reduction="none")
    return ce.sum(dim=1)


def summarize_evaluation(parts: list[dict]) -> dict[str, float]:
    """Combine `evaluate_batch` sums into metrics (accuracies in [0, 1], losses in nats)."""
    total = {k: sum(p[k] for p in parts) for k in parts[0]}
    class_total, class_correct = total["class_total"], total["class_correct"]
    present = class_total > 0
    per_class = (class_correct[present].float() / class_total[present].float()).mean().item()
    examples = total["examples"]
    per_bar = {}
    if len(total["bar_tf_correct"]) > 1:
        bar_total = total["steps"] / len(total["bar_tf_correct"])  # steps scored in each bar
        per_bar = {
            "teacher_forced_accuracy_per_bar": (total["bar_tf_correct"] / bar_total).tolist(),
            "sampled_accuracy_per_bar": (total["bar_sampled_correct"] / bar_total).tolist(),
        }
    return {
        "windows": examples,
        "teacher_forced_accuracy": total["tf_correct"] / total["steps"],
        "sampled_accuracy": total["sampled_correct"] / total["steps"],
        "mean_per_class_accuracy": per_class,
        "r_loss": total["r_loss"] / examples,
        "kl_nats": total["kl"] / examples,
        "kl_bits": total["kl"] / examples / LN2,
        "elbo_nats": -(total["r_loss"] + total["kl"]) / examples,
        **per_bar,
    }
