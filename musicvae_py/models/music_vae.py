"""MusicVAE over event tokens: a bidirectional LSTM encoder and autoregressive categorical LSTM
decoders conditioned on z at every step.

A window holds one token stream (melody or drums: long [batch, steps]) or several played
together (a trio's melody, bass and drums: long [batch, steps, streams]). Each stream has its
own core decoder; all of them read the same conditioning. The decoder is flat (conditioned on
z) or hierarchical (a conductor turns z into one embedding per bar, and each bar's embedding
re-initialises the core decoders and is read beside their inputs for that bar).

Shapes: logits are [batch, steps, classes] per stream; z is [batch, z_size].
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
from musicvae_py.models.lstm import (
    BidirectionalLstmEncoder,
    Conductor,
    HierarchicalLstmEncoder,
    LstmDecoder,
)

STREAM_NAMES = {"melody": ("melody",), "drums": ("drums",), "trio": ("melody", "bass", "drums")}


class MusicVAE(nn.Module):
    """MusicVAE for categorical token streams, with a flat or a hierarchical decoder."""

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        d, m = config.data, config.model
        self.stream_classes = d.stream_classes
        self.stream_names = STREAM_NAMES[d.kind]
        self.steps = d.window_steps
        if (m.conductor_sizes or m.bar_encoder_sizes) and self.steps % m.bar_steps:
            raise ConfigError(
                f"config {config.name}: {self.steps} steps is not a whole number of "
                f"{m.bar_steps}-step bars"
            )
        if m.bar_encoder_sizes:
            self.encoder = HierarchicalLstmEncoder(
                d.input_size, m.encoder_sizes, m.bar_encoder_sizes, m.bar_steps
            )
        else:
            self.encoder = BidirectionalLstmEncoder(d.input_size, m.encoder_sizes)
        self.posterior = GaussianHead(self.encoder.output_size, m.z_size)
        self.conductor = Conductor(m.z_size, m.conductor_sizes) if m.conductor_sizes else None
        cond_size = self.conductor.output_size if self.conductor else m.z_size
        self.decoders = nn.ModuleList(
            LstmDecoder(classes, cond_size, m.decoder_sizes, classes)
            for classes in self.stream_classes
        )

    @property
    def z_size(self) -> int:
        return self.config.model.z_size

    def _streams(self, tokens: torch.Tensor) -> torch.Tensor:
        """int [batch, steps] or [batch, steps, streams] -> long [batch, steps, streams]."""
        tokens = tokens.long()
        return tokens[..., None] if tokens.dim() == 2 else tokens

    def _unstreams(self, tokens: torch.Tensor) -> torch.Tensor:
        """long [batch, steps, streams] -> the window layout of the data kind."""
        return tokens[..., 0] if len(self.stream_classes) == 1 else tokens

    def encoder_inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """Windows -> float [batch, steps, input_size]: one-hot tokens of every stream, or the
        10-dim roll for drums alone."""
        x = self._streams(tokens)
        if self.config.data.kind == "drums":
            return drum_roll(x[..., 0])
        return torch.cat(
            [F.one_hot(x[..., s], c).float() for s, c in enumerate(self.stream_classes)], dim=-1
        )

    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows [batch, steps(, streams)] -> posterior (mu, sigma), each [batch, z_size]."""
        return self.posterior(self.encoder(self.encoder_inputs(tokens)))

    def _segments(self, z: torch.Tensor, steps: int) -> tuple[torch.Tensor, int]:
        """The conditioning of each decoded segment: z itself for a flat decoder ([batch, 1,
        z_size]), else one conductor embedding per bar ([batch, bars, size]); and its length."""
        if self.conductor is None:
            return z[:, None, :], steps
        bar = self.config.model.bar_steps
        return self.conductor(z, -(-steps // bar)), bar

    def teacher_forced_logits(self, z: torch.Tensor, tokens: torch.Tensor) -> list[torch.Tensor]:
        """Per stream, logits [batch, steps, classes] when the decoders read the true previous
        tokens.

        Every segment starts from its own initial state; its first input is the last token of
        the segment before (zeros for the first), so all segments run as one batch.
        """
        x = self._streams(tokens)
        batch, steps, _ = x.shape
        cond, length = self._segments(z, steps)
        segments = cond.shape[1]
        cond = cond.reshape(batch * segments, -1)
        out = []
        for s, (decoder, classes) in enumerate(
            zip(self.decoders, self.stream_classes, strict=True)
        ):
            inputs = F.pad(F.one_hot(x[:, :-1, s], classes).float(), (0, 0, 1, 0))
            inputs = inputs.reshape(batch * segments, length, classes)
            logits, _ = decoder(inputs, cond, decoder.init_state(cond))
            out.append(logits.reshape(batch, steps, classes))
        return out

    def autoregress(
        self,
        z: torch.Tensor,
        steps: int | None = None,
        temperature: float = 1.0,
        targets: torch.Tensor | None = None,
        sampling_probability: float = 1.0,
        generator: torch.Generator | None = None,
        first_tokens: torch.Tensor | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Decode step by step, feeding back the model's own choices.

        At each step the next input is the sampled token (argmax when temperature <= 0), or,
        with probability 1 - sampling_probability, the target token. The first input is all
        zeros, or the one-hot of `first_tokens` (long [batch] or [batch, streams]: the last
        tokens of a preceding segment). Returns (per stream logits [batch, steps, classes],
        tokens long [batch, steps, streams]).
        """
        steps = steps or self.steps
        batch = z.shape[0]
        cond, length = self._segments(z, steps)
        truth = None if targets is None else self._streams(targets)
        if first_tokens is None:
            inputs = [z.new_zeros(batch, 1, c) for c in self.stream_classes]
        else:
            first = first_tokens.long().reshape(batch, -1)
            inputs = [
                F.one_hot(first[:, s], c).float()[:, None]
                for s, c in enumerate(self.stream_classes)
            ]
        logits_per_step: list[list[torch.Tensor]] = [[] for _ in self.stream_classes]
        tokens_per_step = []
        for t in range(steps):
            if t % length == 0:  # a new segment: state from its conditioning vector
                segment = cond[:, t // length]
                states = [decoder.init_state(segment) for decoder in self.decoders]
            use_own = None
            if truth is not None and sampling_probability < 1.0:
                use_own = torch.rand(batch, generator=generator) < sampling_probability
            step_tokens = []
            for s, decoder in enumerate(self.decoders):
                logits, states[s] = decoder(inputs[s], segment, states[s])
                logits = logits[:, 0]
                token = _choose(logits, temperature, generator)
                logits_per_step[s].append(logits)
                step_tokens.append(token)
                fed = token if use_own is None else torch.where(use_own, token, truth[:, t, s])
                inputs[s] = F.one_hot(fed, self.stream_classes[s]).float()[:, None]
            tokens_per_step.append(torch.stack(step_tokens, dim=-1))
        logits = [torch.stack(per_step, dim=1) for per_step in logits_per_step]
        return logits, torch.stack(tokens_per_step, dim=1)

    def generate(
        self,
        z: torch.Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        first_tokens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decode z [batch, z_size] into windows: long [batch, steps] for one stream,
        [batch, steps, streams] for several; temperature 0 is greedy. `first_tokens` are the
        last tokens of a segment this one continues."""
        _, tokens = self.autoregress(
            z, steps, temperature, generator=generator, first_tokens=first_tokens
        )
        return self._unstreams(tokens)

    def augment(self, tokens: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Training-time transposition of a batch of melody windows, long [batch, steps]."""
        d = self.config.data
        if d.kind != "melody":
            return tokens
        return transpose_tokens(tokens, d.transpose, d.num_classes, generator)

    def training_loss(
        self, tokens: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The reference objective: mean over the batch of the reconstruction cross-entropy
        summed over steps (and streams), plus beta times the KL beyond the free bits."""
        t = self.config.train
        x = self._streams(tokens)
        mu, sigma = self.encode(x)
        z = reparameterize(mu, sigma)
        p = sampling_probability_at(step, t.sampling_schedule, t.sampling_rate)
        if p > 0:
            logits, _ = self.autoregress(z, targets=x, sampling_probability=p)
        else:
            logits = self.teacher_forced_logits(z, x)
        r_loss = sum(reconstruction_loss(lg, x[..., s]) for s, lg in enumerate(logits))
        kl = kl_to_standard_normal(mu, sigma)
        beta = beta_at(step, t.max_beta, t.beta_rate)
        loss = r_loss.mean() + beta * free_bits_kl(kl, t.free_bits).mean()
        with torch.no_grad():
            hits = torch.stack([lg.argmax(-1) == x[..., s] for s, lg in enumerate(logits)], -1)
        return loss, {
            "loss": loss.item(),
            "r_loss": r_loss.mean().item(),
            "kl_bits": (kl.mean() / LN2).item(),
            "beta": beta,
            "p_sample": p,
            "accuracy": hits.float().mean().item(),
        }

    @torch.no_grad()
    def evaluate_batch(self, tokens: torch.Tensor, generator: torch.Generator) -> dict:
        """Sums over one held-out batch; `summarize_evaluation` turns them into metrics.

        Teacher-forced and fully sampled accuracy (the decoder reads its own temperature-1
        samples), per bar, per stream and per class, and the ELBO terms in nats (beta 1, no
        free bits).
        """
        x = self._streams(tokens)
        batch, steps, _ = x.shape
        mu, sigma = self.encode(x)
        z = mu + sigma * torch.randn(mu.shape, generator=generator)
        tf_logits = self.teacher_forced_logits(z, x)
        sampled_logits, _ = self.autoregress(z, steps, temperature=1.0, generator=generator)
        r_loss = sum(reconstruction_loss(lg, x[..., s]) for s, lg in enumerate(tf_logits))
        tf_hit = torch.stack([lg.argmax(-1) == x[..., s] for s, lg in enumerate(tf_logits)], -1)
        sampled_hit = torch.stack(
            [lg.argmax(-1) == x[..., s] for s, lg in enumerate(sampled_logits)], -1
        )
        # one class id across all streams, for the per-class accuracy
        offsets = torch.tensor([0, *self.stream_classes[:-1]]).cumsum(0)
        class_ids = x + offsets
        classes = sum(self.stream_classes)
        bar = self.config.model.bar_steps
        bars = steps // bar

        def per_bar(hit: torch.Tensor) -> torch.Tensor:
            return hit[:, : bars * bar].reshape(batch, bars, -1).sum((0, 2))

        return {
            "examples": batch,
            "steps": tf_hit.numel(),
            "tf_correct": tf_hit.sum().item(),
            "sampled_correct": sampled_hit.sum().item(),
            "bar_tf_correct": per_bar(tf_hit),
            "bar_sampled_correct": per_bar(sampled_hit),
            "stream_tf_correct": tf_hit.sum((0, 1)),
            "stream_sampled_correct": sampled_hit.sum((0, 1)),
            "class_total": torch.bincount(class_ids.flatten(), minlength=classes),
            "class_correct": torch.bincount(class_ids[tf_hit], minlength=classes),
            "r_loss": r_loss.sum().item(),
            "kl": kl_to_standard_normal(mu, sigma).sum().item(),
        }

    def summarize_evaluation(self, parts: list[dict]) -> dict[str, float | list[float]]:
        """Combine `evaluate_batch` sums into metrics: accuracies in [0, 1] overall, per bar
        (when a window has several) and per stream (when there are several), losses in nats."""
        total = {k: sum(p[k] for p in parts) for k in parts[0]}
        class_total, class_correct = total["class_total"], total["class_correct"]
        present = class_total > 0
        per_class = (class_correct[present].float() / class_total[present].float()).mean().item()
        examples, scored = total["examples"], total["steps"]
        metrics: dict[str, float | list[float]] = {
            "windows": examples,
            "teacher_forced_accuracy": total["tf_correct"] / scored,
            "sampled_accuracy": total["sampled_correct"] / scored,
            "mean_per_class_accuracy": per_class,
            "r_loss": total["r_loss"] / examples,
            "kl_nats": total["kl"] / examples,
            "kl_bits": total["kl"] / examples / LN2,
            "elbo_nats": -(total["r_loss"] + total["kl"]) / examples,
        }
        bars = len(total["bar_tf_correct"])
        if bars > 1:
            metrics["teacher_forced_accuracy_per_bar"] = (
                total["bar_tf_correct"] / (scored / bars)
            ).tolist()
            metrics["sampled_accuracy_per_bar"] = (
                total["bar_sampled_correct"] / (scored / bars)
            ).tolist()
        streams = len(self.stream_classes)
        if streams > 1:
            per_stream = scored / streams
            tf, sampled = total["stream_tf_correct"], total["stream_sampled_correct"]
            for s, name in enumerate(self.stream_names):
                metrics[f"teacher_forced_accuracy_{name}"] = tf[s].item() / per_stream
                metrics[f"sampled_accuracy_{name}"] = sampled[s].item() / per_stream
        return metrics


def _choose(logits: torch.Tensor, temperature: float, generator: torch.Generator | None):
    """The next token from logits [batch, classes]: argmax at temperature <= 0, else a draw
    from softmax(logits / temperature). Returns long [batch]."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def reconstruction_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Cross-entropy summed over steps: logits [batch, steps, classes] -> [batch] nats."""
    ce = F.cross_entropy(logits.float().transpose(1, 2), tokens, reduction="none")
    return ce.sum(dim=1)
