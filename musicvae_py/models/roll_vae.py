"""VAEs over piano-roll windows: a convolutional family and a recurrent family.

Windows are int [batch, steps, rows, planes] as stored (see `converters.pianoroll`); the models
read them as float, onset and sustain as 0/1 and velocity as velocity / 127. Both families
output logits of the same shape: every onset and sustain cell is a Bernoulli variable, and a
velocity cell predicts velocity / 127 as sigmoid(logit), learnt at the true onsets only.

`ConvRollVAE`: stride-2 convolutions over pitch x time (channel groups and planes as channels)
or over time (every row and plane a channel), a dense layer, the Gaussian posterior; the
decoder maps z through dense layers to the smallest feature map and transposed convolutions
back to the window, all cells at once. With a local latent the dense layers go: z is a
Gaussian at every position of the smallest feature map (for 2 bars over time, one per beat),
and the decoder maps each position's part of z back to its own position. With a causal
context, a convolution over the frames before each frame adds to that frame's sustain logits,
so the decoder is autoregressive over frames (teacher-forced in training, frame by frame in
sampling) while the onsets stay z's alone.

With note durations the convolutional decoder has no sustain cells: every cell has an onset
logit and a few duration features, and a small network (`DurationHead`) turns the features of
the cell where a note starts into a categorical distribution over how many steps it lasts (at
most to the window's end). The first step also has a logit per row for a note held from before
the window. Along each row, a note is drawn whole: it starts, draws its length once, and the row
takes no onset until it ends. Independent sustain cells, by contrast, break notes up wherever z
is uncertain.

`RecurrentRollVAE`: a bidirectional LSTM over frames (a step's rows x planes, flattened) and
an autoregressive LSTM over frames that reads the previous frame and z, with one Bernoulli per
cell of each frame (multi-hot outputs).

Sampling at temperature T draws each cell from Bernoulli(sigmoid(logit / T)); T = 0 keeps the
cells whose probability is above 0.5.

Loss, in nats per window: `r_loss` is the binary cross-entropy summed over all onset and
sustain cells (with note durations: over the first step's held-from-before cells and the onset
cells where no note sounds, plus the cross-entropy of every note's length); with a velocity
plane, the cross-entropy of the velocity cells against velocity / 127 at the true onsets is
added to the training loss (but not to the ELBO);
`loss = mean(r_loss + velocity loss) + beta * mean(max(KL - free_bits * ln 2, 0))`.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from musicvae_py.configs import Config
from musicvae_py.converters.pianoroll import ONSET, SUSTAIN, VELOCITY, transpose_rolls
from musicvae_py.errors import ConfigError
from musicvae_py.models.core import (
    LN2,
    GaussianHead,
    beta_at,
    free_bits_kl,
    kl_to_standard_normal,
    reparameterize,
)
from musicvae_py.models.lstm import BidirectionalLstmEncoder, LstmDecoder

OUTPUT_BIAS = -4.0  # initial output logit: a cell is rarely on (about 2% at this bias)
PRIOR_MOMENTUM = 0.002  # weight of each training batch in the fitted prior's running moments
MAX_VELOCITY = 127.0


def roll_inputs(rolls: torch.Tensor) -> torch.Tensor:
    """Stored windows int [batch, steps, rows, planes] -> float, velocity scaled to [0, 1]."""
    x = rolls.float()
    if x.shape[-1] > VELOCITY:
        x = torch.cat([x[..., :VELOCITY], x[..., VELOCITY:] / MAX_VELOCITY], dim=-1)
    return x


def roll_reconstruction_loss(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bernoulli negative log-likelihood of the onset and sustain cells, summed per window:
    logits, x float [batch, steps, rows, planes] -> [batch] nats."""
    bce = F.binary_cross_entropy_with_logits(
        logits[..., :VELOCITY].float(), x[..., :VELOCITY], reduction="none"
    )
    return bce.flatten(1).sum(dim=1)


def velocity_loss(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the velocity cells against velocity / 127 at the true onsets, summed
    per window: [batch, steps, rows, planes] -> [batch] nats (zeros without a velocity plane)."""
    if x.shape[-1] <= VELOCITY:
        return x.new_zeros(len(x))
    bce = F.binary_cross_entropy_with_logits(
        logits[..., VELOCITY].float(), x[..., VELOCITY], reduction="none"
    )
    return (bce * x[..., ONSET]).flatten(1).sum(dim=1)


def note_starts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where notes start and how long they last, from windows float [batch, steps, rows,
    planes]: starts bool [batch, steps, rows] (the onsets, and at the first step the sustain
    cells without an onset: notes held from before) and durations long, the same shape (the
    steps from a start through the sustain after it, up to the next onset of its row; 1 where
    nothing starts). A note ends where the next one of its row starts, so no note ever sounds
    at another's onset."""
    onset, sustain = x[..., ONSET] > 0, x[..., SUSTAIN] > 0
    held_on = (sustain & ~onset).long()  # steps that continue a note begun before them
    durations = torch.ones_like(held_on)
    run = torch.zeros_like(held_on[:, 0])  # held steps from step t + 1 on
    for t in reversed(range(x.shape[1])):
        durations[:, t] += run
        run = held_on[:, t] * (run + 1)
    starts = onset.clone()
    starts[:, 0] |= sustain[:, 0]
    return starts, durations


def paint_sustain(starts: torch.Tensor, durations: torch.Tensor) -> torch.Tensor:
    """The sustain plane long [batch, steps, rows] of notes starting at `starts` (bool) that last
    `durations` steps (long), each cut at the next start of its row; the inverse of
    `note_starts` for windows whose notes all sound at their onsets."""
    sustain = torch.zeros_like(durations)
    remaining = torch.zeros_like(durations[:, 0])
    for t in range(durations.shape[1]):
        remaining = torch.where(starts[:, t], durations[:, t], remaining)
        sustain[:, t] = (remaining > 0).long()
        remaining = (remaining - 1).clamp(min=0)
    return sustain


def draw_cells(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Cells from logits [..., planes]: onset and sustain drawn from
    Bernoulli(sigmoid(logit / T)) (thresholded at 0.5 when T <= 0), velocity 1-127 from
    sigmoid(logit) at the drawn onsets and 0 elsewhere. Returns long, the same shape."""
    flags = logits[..., :VELOCITY].float()
    if temperature <= 0:
        cells = (flags > 0).long()
    else:
        cells = torch.bernoulli(torch.sigmoid(flags / temperature), generator=generator).long()
    if logits.shape[-1] <= VELOCITY:
        return cells
    level = (torch.sigmoid(logits[..., VELOCITY:].float()) * MAX_VELOCITY).round().long()
    level = level.clamp(1, int(MAX_VELOCITY)) * cells[..., ONSET : ONSET + 1]
    return torch.cat([cells, level], dim=-1)


def cell_counts(name: str, predicted: torch.Tensor, target: torch.Tensor, plane: int) -> dict:
    """True positives, false positives and false negatives of one plane, as `name_tp` etc."""
    p, t = predicted[..., plane] > 0, target[..., plane] > 0
    return {
        f"{name}_tp": (p & t).sum().item(),
        f"{name}_fp": (p & ~t).sum().item(),
        f"{name}_fn": (~p & t).sum().item(),
    }


def _scores(total: dict, name: str) -> dict[str, float]:
    tp, fp, fn = total[f"{name}_tp"], total[f"{name}_fp"], total[f"{name}_fn"]
    return {
        f"{name}_precision": tp / max(tp + fp, 1),
        f"{name}_recall": tp / max(tp + fn, 1),
        f"{name}_f1": 2 * tp / max(2 * tp + fp + fn, 1),
    }


class _RollVAE(nn.Module):
    """What both families share: posterior, loss, augmentation, evaluation and sampling.

    A family supplies `encoder` ([batch, steps, rows, planes] float -> [batch, size]),
    `decode_logits(z, x)` (logits given z and, for teacher forcing, the true windows) and
    `decode(z, temperature, generator, first_frame)` (cells and logits decoded from z alone).
    """

    teacher_forced = False  # whether decode_logits reads the true windows

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.data = config.data
        if self.data.kind not in ("pianoroll", "multitrack"):
            raise ConfigError(f"config {config.name}: roll models need piano-roll data")
        prior = config.model.prior
        if prior not in ("standard", "fitted"):
            raise ConfigError(f"config {config.name}: prior must be standard or fitted")
        if prior == "fitted":
            # Running mean and second moment of the latents decoded in training.
            self.register_buffer("prior_mean", torch.zeros(self.z_size))
            self.register_buffer("prior_moment", torch.eye(self.z_size))

    @property
    def z_size(self) -> int:
        return self.config.model.z_size

    def reconstruction_loss(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of the windows x given the decoder's logits, per window:
        [batch, steps, rows, planes] -> [batch] nats."""
        return roll_reconstruction_loss(logits, x)

    def draw(
        self, logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Windows long [batch, steps, rows, planes] drawn from the decoder's logits."""
        return draw_cells(logits, temperature, generator)

    def training_logits(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The logits the training loss reads: `decode_logits(z, x)`."""
        return self.decode_logits(z, x)

    def encode(self, rolls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows [batch, steps, rows, planes] -> posterior (mu, sigma), each [batch, z]."""
        return self.posterior(self.encoder(roll_inputs(rolls)))

    def from_standard_normal(self, eps: torch.Tensor) -> torch.Tensor:
        """Prior latents from standard-normal draws eps [n, z_size]: eps itself, or with the
        fitted prior mean + L eps, L the Cholesky factor of the running covariance."""
        if self.config.model.prior == "standard":
            return eps
        mean = self.prior_mean.double()
        cov = self.prior_moment.double() - torch.outer(mean, mean)
        jitter = 1e-6 * torch.eye(self.z_size, dtype=torch.float64)
        scale = torch.linalg.cholesky(0.5 * (cov + cov.T) + jitter)
        return (mean + eps.double() @ scale.T).to(eps.dtype)

    def generate(
        self,
        z: torch.Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        first_tokens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decode z [batch, z_size] into windows long [batch, steps, rows, planes].

        `first_tokens` (int [batch, rows * planes]) is the last frame of a window this one
        continues; the recurrent decoder starts from it, the convolutional one ignores it.
        """
        if steps is not None and steps != self.data.window_steps:
            raise ConfigError(
                f"config {self.config.name}: roll models decode whole {self.data.window_steps}"
                f"-step windows, not {steps} steps"
            )
        cells, _ = self.decode(z, temperature, generator, first_tokens)
        return cells

    def augment(self, rolls: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Training-time transposition within the pitch range (drum rows stay)."""
        return transpose_rolls(rolls, self.data, generator)

    def training_loss(
        self, rolls: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean over the batch of the reconstruction loss (plus the velocity loss), plus beta
        times the KL beyond the free bits; see the module docstring."""
        t = self.config.train
        x = roll_inputs(rolls)
        mu, sigma = self.posterior(self.encoder(x))
        z = reparameterize(mu, sigma)
        logits = self.training_logits(z, x)
        if self.config.model.prior == "fitted":
            with torch.no_grad():
                self.prior_mean.lerp_(z.mean(dim=0), PRIOR_MOMENTUM)
                self.prior_moment.lerp_(z.T @ z / len(z), PRIOR_MOMENTUM)
        r_loss = self.reconstruction_loss(logits, x)
        v_loss = velocity_loss(logits, x)
        kl = kl_to_standard_normal(mu, sigma)
        beta = beta_at(step, t.max_beta, t.beta_rate)
        loss = (r_loss + v_loss).mean() + beta * free_bits_kl(kl, t.free_bits).mean()
        with torch.no_grad():
            hits = (logits[..., ONSET] > 0) == (x[..., ONSET] > 0)
        return loss, {
            "loss": loss.item(),
            "r_loss": r_loss.mean().item(),
            "velocity_loss": v_loss.mean().item(),
            "kl_bits": (kl.mean() / LN2).item(),
            "beta": beta,
            "p_sample": 0.0,
            "accuracy": hits.float().mean().item(),  # of all onset cells
        }

    @torch.no_grad()
    def evaluate_batch(self, rolls: torch.Tensor, generator: torch.Generator) -> dict:
        """Sums over one held-out batch; `summarize_evaluation` turns them into metrics.

        Reconstructions decode the posterior mean at temperature 0, from z alone (the
        recurrent decoder reads its own frames); the ELBO terms use one posterior sample,
        beta 1 and no free bits.
        """
        x, target = roll_inputs(rolls), rolls.long()
        mu, sigma = self.posterior(self.encoder(x))
        z = mu + sigma * torch.randn(mu.shape, generator=generator)
        r_loss = self.reconstruction_loss(self.decode_logits(z, x), x)
        cells, logits = self.decode(mu, 0.0, generator)
        sums = {
            "examples": len(x),
            "r_loss": r_loss.sum().item(),
            "kl": kl_to_standard_normal(mu, sigma).sum().item(),
            **cell_counts("onset", cells, target, ONSET),
            **cell_counts("frame", cells, target, SUSTAIN),
        }
        if self.teacher_forced:
            forced = self.draw(self.decode_logits(mu, x), 0.0)
            sums.update(cell_counts("teacher_forced_onset", forced, target, ONSET))
            sums.update(cell_counts("teacher_forced_frame", forced, target, SUSTAIN))
        if self.data.velocity:
            onsets = target[..., ONSET] > 0
            level = torch.sigmoid(logits[..., VELOCITY]) * MAX_VELOCITY
            sums["velocity_error"] = (level - target[..., VELOCITY])[onsets].abs().sum().item()
            sums["velocity_onsets"] = onsets.sum().item()
        return sums

    def summarize_evaluation(self, parts: list[dict]) -> dict[str, float]:
        """Onset and frame precision, recall and F1 of the reconstructions (over all cells of
        all windows), the mean velocity error in MIDI units, and the ELBO in nats."""
        total = {k: sum(p[k] for p in parts) for k in parts[0]}
        examples = total["examples"]
        metrics: dict[str, float] = {"windows": examples}
        metrics.update(_scores(total, "onset"))
        metrics.update(_scores(total, "frame"))
        if self.teacher_forced:
            metrics["teacher_forced_onset_f1"] = _scores(total, "teacher_forced_onset")[
                "teacher_forced_onset_f1"
            ]
            metrics["teacher_forced_frame_f1"] = _scores(total, "teacher_forced_frame")[
                "teacher_forced_frame_f1"
            ]
        if "velocity_error" in total:
            metrics["velocity_mae"] = total["velocity_error"] / max(total["velocity_onsets"], 1)
        metrics.update(
            {
                "r_loss": total["r_loss"] / examples,
                "kl_nats": total["kl"] / examples,
                "kl_bits": total["kl"] / examples / LN2,
                "elbo_nats": -(total["r_loss"] + total["kl"]) / examples,
            }
        )
        return metrics


class ConvRollVAE(_RollVAE):
    """The convolutional family; see the module docstring."""

    def __init__(self, config: Config):
        super().__init__(config)
        m, d = config.model, self.data
        if m.conv_dims not in (1, 2):
            raise ConfigError(f"config {config.name}: conv_dims must be 1 or 2")
        if m.kernel_size % 2 == 0:
            raise ConfigError(f"config {config.name}: kernel_size must be odd")
        if m.duration_features > 0 and m.context_steps > 0:
            raise ConfigError(
                f"config {config.name}: note durations and a causal context do not combine"
            )
        # output planes per row: onset, sustain (with durations: held from before), velocity,
        # then the duration features
        self.out_planes = d.planes + m.duration_features
        stages = len(m.conv_channels)
        self.multiple = 2**stages  # padded sizes halve exactly at every stage
        self.group_height = max(d.group_rows)
        if m.conv_dims == 2:
            in_channels = len(d.group_rows) * d.planes
            out_channels = len(d.group_rows) * self.out_planes
            padded = (_round_up(self.group_height, self.multiple),)
        else:
            in_channels = d.rows * d.planes
            out_channels = d.rows * self.out_planes
            padded = ()
        padded += (_round_up(d.window_steps, self.multiple),)
        self.smallest = (m.conv_channels[-1], *(size // self.multiple for size in padded))

        conv = nn.Conv2d if m.conv_dims == 2 else nn.Conv1d
        layers: list[nn.Module] = []
        width = in_channels
        for channels in m.conv_channels:
            layers += [conv(width, channels, m.kernel_size, 2, m.kernel_size // 2), nn.ReLU()]
            width = channels
        flat = math.prod(self.smallest)
        positions = flat // self.smallest[0]
        if m.local_latent:
            if m.z_size % positions:
                raise ConfigError(
                    f"config {config.name}: z_size {m.z_size} does not split evenly over the "
                    f"{positions} positions of the smallest feature map"
                )
            self.conv_encoder = nn.Sequential(*layers)
            self.posterior = PositionwiseGaussian(self.smallest[0], m.z_size // positions)
            z_in: list[nn.Module] = [
                nn.Unflatten(1, (positions, m.z_size // positions)),
                nn.Linear(m.z_size // positions, self.smallest[0]),
                nn.ReLU(),
                _ChannelsFirst(self.smallest[1:]),
            ]
        else:
            self.conv_encoder = nn.Sequential(
                *layers,
                nn.Flatten(),
                nn.Linear(flat, m.hidden_size),
                nn.ReLU(),
            )
            self.posterior = GaussianHead(m.hidden_size, m.z_size)
            z_in = [
                nn.Linear(m.z_size, m.hidden_size),
                nn.ReLU(),
                nn.Linear(m.hidden_size, flat),
                nn.ReLU(),
                nn.Unflatten(1, self.smallest),
            ]

        deconv = nn.ConvTranspose2d if m.conv_dims == 2 else nn.ConvTranspose1d
        sizes = [*reversed(m.conv_channels), out_channels]
        ups: list[nn.Module] = []
        for i, (size_in, size_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            k = m.kernel_size
            ups.append(deconv(size_in, size_out, k, 2, k // 2, output_padding=1))
            if i < len(sizes) - 2:
                ups.append(nn.ReLU())
        nn.init.constant_(ups[-1].bias, OUTPUT_BIAS)
        with torch.no_grad():  # channels are (group or row, plane): features start unbiased
            ups[-1].bias[torch.arange(out_channels) % self.out_planes >= d.planes] = 0.0
        self.decoder = nn.Sequential(*z_in, *ups)
        self.context: CausalContext | None = None
        if m.context_steps > 0:
            self.context = CausalContext(d.rows, d.planes, m.context_steps, m.hidden_size)
            self.teacher_forced = True
        self.durations: DurationHead | None = None
        if m.duration_features > 0:
            self.durations = DurationHead(m.duration_features, d.window_steps, m.hidden_size)

    def encoder(self, x: torch.Tensor) -> torch.Tensor:
        """float [batch, steps, rows, planes] -> [batch, hidden_size], or with a local latent
        the smallest feature map [batch, channels, *positions]."""
        return self.conv_encoder(self._to_grid(x))

    def _to_grid(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, steps, rows, planes] -> 2-D: [batch, groups * planes, height, steps] (each
        group's rows padded to the tallest group's), or 1-D: [batch, rows * planes, steps];
        padded to whole multiples of 2 ** stages."""
        batch, steps, _, planes = x.shape
        pad_steps = _round_up(steps, self.multiple) - steps
        if self.config.model.conv_dims == 1:
            flat = x.permute(0, 2, 3, 1).reshape(batch, -1, steps)
            return F.pad(flat, (0, pad_steps))
        groups = [
            F.pad(g, (0, 0, 0, self.group_height - g.shape[2]))
            for g in torch.split(x, self.data.group_rows, dim=2)
        ]
        grid = torch.stack(groups, dim=1)  # [batch, groups, steps, height, planes]
        grid = grid.permute(0, 1, 4, 3, 2).reshape(batch, -1, self.group_height, steps)
        pad_height = _round_up(self.group_height, self.multiple) - self.group_height
        return F.pad(grid, (0, pad_steps, 0, pad_height))

    def _from_grid(self, y: torch.Tensor) -> torch.Tensor:
        """The inverse of `_to_grid` for the decoder's output planes, cropping the padding:
        -> [batch, steps, rows, out_planes]."""
        d = self.data
        batch, steps, planes = len(y), d.window_steps, self.out_planes
        if self.config.model.conv_dims == 1:
            return y[..., :steps].reshape(batch, d.rows, planes, steps).permute(0, 3, 1, 2)
        groups = len(d.group_rows)
        grid = y[:, :, : self.group_height, :steps]
        grid = grid.reshape(batch, groups, planes, self.group_height, steps)
        grid = grid.permute(0, 4, 1, 3, 2)  # [batch, steps, groups, height, planes]
        return torch.cat([grid[:, :, g, :rows] for g, rows in enumerate(d.group_rows)], dim=2)

    def reconstruction_loss(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """With note durations, per window: the binary cross-entropy of the first step's
        held-from-before cells and of the onset cells where no earlier note still sounds, plus
        the cross-entropy of every note's length. logits [batch, steps, rows, out_planes],
        x [batch, steps, rows, planes] -> [batch] nats."""
        if self.durations is None:
            return super().reconstruction_loss(logits, x)
        starts, durations = note_starts(x)
        held_from_before = starts[:, 0] & (x[:, 0, :, ONSET] == 0)
        busy = paint_sustain(starts, durations).bool() & ~starts  # onsets cannot happen
        busy[:, 0] |= held_from_before  # a held note comes before any onset
        onset = F.binary_cross_entropy_with_logits(
            logits[..., ONSET].float(), x[..., ONSET], reduction="none"
        )
        held = F.binary_cross_entropy_with_logits(
            logits[:, 0, :, SUSTAIN].float(), held_from_before.float(), reduction="none"
        )
        where = starts.nonzero(as_tuple=True)  # (window, step, row) of every note
        features = logits[..., self.data.planes :][where].float()
        nll = F.cross_entropy(
            self.durations(features, where[1]), durations[where] - 1, reduction="none"
        )
        per_window = onset.masked_fill(busy, 0.0).flatten(1).sum(dim=1) + held.sum(dim=1)
        return per_window.index_add(0, where[0], nll)

    def draw(
        self, logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """With note durations, step by step along every row: at the first step a note held
        from before, then wherever the row is silent an onset, each a Bernoulli cell; every
        note drawn gets one length from its categorical at temperature T (the most likely when
        T <= 0), and its row stays busy that long."""
        planes = self.data.planes
        cells = draw_cells(logits[..., :planes], temperature, generator)
        if self.durations is None:
            return cells
        onsets = torch.zeros_like(cells[..., ONSET])
        sustain = torch.zeros_like(onsets)
        remaining = torch.zeros_like(onsets[:, 0])
        for t in range(cells.shape[1]):
            onsets[:, t] = cells[:, t, :, ONSET] * (remaining == 0)
            starts = onsets[:, t] > 0
            if t == 0:
                held = cells[:, 0, :, SUSTAIN] > 0
                onsets[:, 0] *= ~held
                starts = held | (onsets[:, 0] > 0)
            where = starts.nonzero(as_tuple=True)
            features = logits[:, t, :, planes:][where].float()
            step = torch.full((len(features),), t, dtype=torch.long)
            remaining[where] = self._draw_lengths(features, step, temperature, generator)
            sustain[:, t] = (remaining > 0).long()
            remaining = (remaining - 1).clamp(min=0)
        cells[..., ONSET] = onsets
        cells[..., SUSTAIN] = sustain
        if cells.shape[-1] > VELOCITY:
            cells[..., VELOCITY] *= onsets
        return cells

    def _draw_lengths(
        self,
        features: torch.Tensor,
        step: torch.Tensor,
        temperature: float,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Note lengths long [notes] in steps, from features [notes, features] at `step`."""
        logits = self.durations(features, step)
        if temperature <= 0 or not len(logits):
            return logits.argmax(dim=-1) + 1
        probs = torch.softmax(logits / temperature, dim=-1)
        return torch.multinomial(probs, 1, generator=generator)[:, 0] + 1

    def training_logits(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """With `duration_noise` s > 0, the duration features come from a second decoding of
        z + s * N(0, I): the lengths are learnt from latents off the training ones too, so
        they stay right for the latents the prior draws."""
        logits = self.decode_logits(z, x)
        noise = self.config.model.duration_noise
        if self.durations is None or noise <= 0:
            return logits
        noisy = self.decode_logits(z + noise * torch.randn_like(z), x)
        planes = self.data.planes
        return torch.cat([logits[..., :planes], noisy[..., planes:]], dim=-1)

    def decode_logits(self, z: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """z [batch, z_size] -> logits [batch, steps, rows, out_planes]. With a causal context,
        every frame's logits also read the `context_steps` true frames of x (float, the same
        shape) before it, zeros before the first (teacher forcing); otherwise x is not read."""
        logits = self._from_grid(self.decoder(z))
        if self.context is None:
            return logits
        if x is None:
            raise ValueError("a decoder with a causal context needs the true windows")
        frames = x.flatten(2).transpose(1, 2)  # [batch, rows * planes, steps]
        before = F.pad(frames, (self.context.steps, 0))[..., :-1]
        flat = logits.flatten(2).transpose(1, 2)
        return self.context(before, flat).transpose(1, 2).reshape(logits.shape)

    def decode(
        self,
        z: torch.Tensor,
        temperature: float,
        generator: torch.Generator | None = None,
        first_frame: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cells long and logits float, each [batch, steps, rows, planes]: all at once, or
        with a causal context frame by frame, each drawn frame read by the ones after it
        (`first_frame`, int [batch, rows * planes] as stored, stands before the first)."""
        logits = self._from_grid(self.decoder(z))
        if self.context is None:
            return self.draw(logits, temperature, generator), logits
        batch, steps, rows, planes = logits.shape
        history = logits.new_zeros(batch, rows * planes, self.context.steps)
        if first_frame is not None:
            stored = first_frame.reshape(batch, 1, rows, planes)
            history[..., -1] = roll_inputs(stored).reshape(batch, -1)
        all_cells, all_logits = [], []
        for t in range(steps):
            step_logits = self.context(history, logits[:, t].reshape(batch, -1, 1))
            step_logits = step_logits.reshape(batch, rows, planes)
            cells = draw_cells(step_logits, temperature, generator)
            frame = roll_inputs(cells).reshape(batch, -1, 1)
            history = torch.cat([history[..., 1:], frame], dim=-1)
            all_cells.append(cells)
            all_logits.append(step_logits)
        return torch.stack(all_cells, dim=1), torch.stack(all_logits, dim=1)


class RecurrentRollVAE(_RollVAE):
    """The recurrent family; see the module docstring."""

    teacher_forced = True

    def __init__(self, config: Config):
        super().__init__(config)
        m, d = config.model, self.data
        if m.duration_features > 0:
            raise ConfigError(f"config {config.name}: note durations are for roll_conv models")
        self.frame_size = d.rows * d.planes
        self.lstm_encoder = BidirectionalLstmEncoder(self.frame_size, m.encoder_sizes)
        self.posterior = GaussianHead(self.lstm_encoder.output_size, m.z_size)
        self.decoder = LstmDecoder(self.frame_size, m.z_size, m.decoder_sizes, self.frame_size)
        nn.init.constant_(self.decoder.output.bias, OUTPUT_BIAS)

    def encoder(self, x: torch.Tensor) -> torch.Tensor:
        """float [batch, steps, rows, planes] -> [batch, 2 * encoder_sizes[-1]]."""
        return self.lstm_encoder(x.flatten(2))

    def decode_logits(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: every frame's logits given z and the true frames before it (zeros
        before the first). z [batch, z_size], x float [batch, steps, rows, planes] -> logits of
        the same shape."""
        frames = x.flatten(2)
        inputs = F.pad(frames[:, :-1], (0, 0, 1, 0))
        logits, _ = self.decoder(inputs, z, self.decoder.init_state(z))
        return logits.reshape(x.shape)

    def decode(
        self,
        z: torch.Tensor,
        temperature: float,
        generator: torch.Generator | None = None,
        first_frame: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame by frame, each drawn frame read back as the next input; the first input is
        zeros or `first_frame` (int [batch, rows * planes], as stored). Returns cells long and
        logits float, each [batch, steps, rows, planes]."""
        d = self.data
        batch = len(z)
        if first_frame is None:
            frame = z.new_zeros(batch, 1, self.frame_size)
        else:
            stored = first_frame.reshape(batch, 1, d.rows, d.planes)
            frame = roll_inputs(stored).reshape(batch, 1, self.frame_size)
        state = self.decoder.init_state(z)
        all_cells, all_logits = [], []
        for _ in range(d.window_steps):
            logits, state = self.decoder(frame, z, state)
            logits = logits.reshape(batch, 1, d.rows, d.planes)
            cells = draw_cells(logits, temperature, generator)
            all_cells.append(cells)
            all_logits.append(logits)
            frame = roll_inputs(cells).reshape(batch, 1, self.frame_size)
        return torch.cat(all_cells, dim=1), torch.cat(all_logits, dim=1)


class CausalContext(nn.Module):
    """Logits of a frame from the all-at-once decoder's logits for it and the `steps` frames
    before it. Only the sustain logits change, by W2 relu(conv(frames before) + W1 logits)
    (W2 zero at the start): where notes start stays z's to say, how long they are held also
    reads what was drawn.

    frames_before float [batch, rows * planes, k + steps - 1] (the frames before each of k
    frames), logits [batch, rows * planes, k] -> [batch, rows * planes, k]."""

    def __init__(self, rows: int, planes: int, steps: int, hidden: int):
        super().__init__()
        self.steps = steps
        frame = rows * planes
        self.frames_in = nn.Conv1d(frame, hidden, steps)
        self.logits_in = nn.Conv1d(frame, hidden, 1, bias=False)
        self.out = nn.Conv1d(hidden, rows, 1)
        nn.init.zeros_(self.out.weight)  # start as the all-at-once decoder
        nn.init.zeros_(self.out.bias)
        self.planes = planes

    def forward(self, frames_before: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        hidden = F.relu(self.frames_in(frames_before) + self.logits_in(logits))
        batch, _, k = logits.shape
        cells = logits.reshape(batch, -1, self.planes, k)  # rows, then planes
        sustain = cells[:, :, SUSTAIN] + self.out(hidden)
        cells = torch.cat(
            [cells[:, :, :SUSTAIN], sustain[:, :, None], cells[:, :, SUSTAIN + 1 :]], 2
        )
        return cells.reshape(logits.shape)


class DurationHead(nn.Module):
    """Logits over a note's length, 1 to `steps` steps, from the duration features of the cell
    where it starts; lengths past the window's end are impossible.

    features float [notes, features], step long [notes] (where each starts) ->
    [notes, steps]."""

    def __init__(self, features: int, steps: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, steps))
        self.steps = steps

    def forward(self, features: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        logits = self.net(features)
        beyond = torch.arange(self.steps, device=step.device) >= (self.steps - step)[:, None]
        return logits.masked_fill(beyond, float("-inf"))


class PositionwiseGaussian(nn.Module):
    """A Gaussian posterior at every position of a feature map, flattened into one z:
    [batch, channels, *positions] -> (mu, sigma), each [batch, positions * z_per_position],
    position-major."""

    def __init__(self, channels: int, z_per_position: int):
        super().__init__()
        self.head = GaussianHead(channels, z_per_position)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, sigma = self.head(h.flatten(2).transpose(1, 2))
        return mu.flatten(1), sigma.flatten(1)


class _ChannelsFirst(nn.Module):
    """[batch, positions, channels] -> [batch, channels, *shape] (positions = prod(shape))."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.transpose(1, 2).reshape(len(h), -1, *self.shape)


def _round_up(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


def build_roll_model(config: Config) -> nn.Module:
    """The roll VAE of `config`'s architecture."""
    if config.model.architecture == "roll_conv":
        return ConvRollVAE(config)
    return RecurrentRollVAE(config)
