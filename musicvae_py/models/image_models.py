"""Image autoencoders and VAEs: convolutional or MLP bodies, plain, denoising or
super-resolution inputs, optionally conditioned on a label.

Shapes: images are float [batch, channels, height, width] with pixel values in [0, 1]; labels are
long [batch]; codes and latents are [batch, z_size]; decoder outputs are logits of the pixel
means, [batch, channels, height, width]. Losses are in nats (per pixel for the autoencoders'
training loss, per image for the VAEs').

A `ImageAutoencoder` has a deterministic code. Its `augment` corrupts each training batch with
fresh noise drawn from the step's generator (or downsamples it), and it keeps a running mean and
variance of its codes so that it can also draw samples (decoding codes from that Gaussian). An
`ImageVAE` has a Gaussian latent with a log-variance head: sigma = exp(0.5 * logvar) for both
the reparameterised sample and the KL term.
"""

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from musicvae_py.configs import Config
from musicvae_py.errors import ConfigError
from musicvae_py.models.core import (
    LN2,
    GaussianHead,
    beta_at,
    free_bits_kl,
    kl_to_standard_normal,
    reparameterize,
)

CORRUPTIONS = ("none", "gaussian", "salt_pepper", "downsample")
LIKELIHOODS = ("bernoulli", "gaussian")
CODE_MOMENTUM = 0.01  # weight of each training batch in the autoencoder's running code statistics


def conv_size(size: int, stages: int) -> int:
    """Side length after `stages` stride-2 3x3 convolutions with padding 1: ceil(size / 2) each."""
    for _ in range(stages):
        size = (size + 1) // 2
    return size


def psnr(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio of each image, pixel values in [0, 1]:
    [batch, c, h, w] x 2 -> [batch] dB."""
    mse = (output - target).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))


def bicubic_upsample(low: torch.Tensor, factor: int) -> torch.Tensor:
    """The bicubic baseline of super-resolution: [b, c, h, w] -> [b, c, h*factor, w*factor]."""
    up = F.interpolate(low, scale_factor=factor, mode="bicubic", align_corners=False)
    return up.clamp(0.0, 1.0)


class ImageEncoder(nn.Module):
    """Stride-2 convolutions (if any), flatten, the one-hot label (if any), dense ReLU layers.

    x: [batch, channels, height, width], labels one-hot [batch, num_labels] or None ->
    features [batch, output_size].
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        conv_channels: tuple[int, ...],
        hidden_sizes: tuple[int, ...],
        label_size: int = 0,
    ):
        super().__init__()
        channels, height, width = input_shape
        convs: list[nn.Module] = []
        for size in conv_channels:
            convs += [nn.Conv2d(channels, size, 3, stride=2, padding=1), nn.ReLU()]
            channels = size
        self.convs = nn.Sequential(*convs)
        stages = len(conv_channels)
        width_in = channels * conv_size(height, stages) * conv_size(width, stages) + label_size
        dense: list[nn.Module] = []
        for size in hidden_sizes:
            dense += [nn.Linear(width_in, size), nn.ReLU()]
            width_in = size
        self.dense = nn.Sequential(*dense)
        self.output_size = width_in

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.convs(x).flatten(1)
        if labels is not None:
            h = torch.cat([h, labels], dim=1)
        return self.dense(h)


class ImageDecoder(nn.Module):
    """The mirror of `ImageEncoder`: dense ReLU layers, then either one dense layer to every
    pixel (MLP) or a dense layer to the smallest feature map and stride-2 transposed
    convolutions back to the image size.

    z: [batch, z_size], labels one-hot [batch, num_labels] or None -> logits
    [batch, channels, height, width].
    """

    def __init__(
        self,
        z_size: int,
        output_shape: tuple[int, int, int],
        conv_channels: tuple[int, ...],
        hidden_sizes: tuple[int, ...],
        label_size: int = 0,
    ):
        super().__init__()
        self.output_shape = output_shape
        channels, height, width = output_shape
        width_in = z_size + label_size
        dense: list[nn.Module] = []
        for size in reversed(hidden_sizes):
            dense += [nn.Linear(width_in, size), nn.ReLU()]
            width_in = size
        if conv_channels:
            stages = len(conv_channels)
            self.start_shape = (
                conv_channels[-1],
                conv_size(height, stages),
                conv_size(width, stages),
            )
            dense += [nn.Linear(width_in, math.prod(self.start_shape)), nn.ReLU()]
        else:
            self.start_shape = output_shape
            dense.append(nn.Linear(width_in, math.prod(output_shape)))
        self.dense = nn.Sequential(*dense)
        ups: list[nn.Module] = []
        sizes = list(reversed(conv_channels)) + [channels]
        for i, (size_in, size_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            ups.append(nn.ConvTranspose2d(size_in, size_out, 3, 2, padding=1, output_padding=1))
            if i < len(sizes) - 2:
                ups.append(nn.ReLU())
        self.ups = nn.Sequential(*ups)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is not None:
            z = torch.cat([z, labels], dim=1)
        h = self.dense(z).reshape(len(z), *self.start_shape)
        _, height, width = self.output_shape
        return self.ups(h)[:, :, :height, :width]  # transposed convolutions may overshoot


class ImageAutoencoder(nn.Module):
    """An autoencoder with a deterministic code (plain, denoising or super-resolution)."""

    variational = False

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        d, m = config.data, config.model
        self.image_shape = (d.channels, d.height, d.width)
        self.input_shape = self.image_shape
        if m.corruption == "downsample":
            f = m.downsample
            self.input_shape = (d.channels, d.height // f, d.width // f)
        label_size = m.num_labels if m.conditional else 0
        self.encoder = ImageEncoder(self.input_shape, m.conv_channels, m.hidden_sizes, label_size)
        self._build_head(self.encoder.output_size, m.z_size)
        self.decoder = ImageDecoder(
            m.z_size, self.image_shape, m.conv_channels, m.hidden_sizes, label_size
        )

    def _build_head(self, features: int, z_size: int) -> None:
        self.code = nn.Linear(features, z_size)
        # A running Gaussian of the codes seen in training: what `prior_sample` draws from.
        self.register_buffer("code_mean", torch.zeros(z_size))
        self.register_buffer("code_var", torch.ones(z_size))

    @property
    def z_size(self) -> int:
        return self.config.model.z_size

    @property
    def conditional(self) -> bool:
        return self.config.model.conditional

    @property
    def num_labels(self) -> int:
        return self.config.model.num_labels

    def one_hot(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        """long [batch] -> float [batch, num_labels] for a conditional model, else None."""
        if not self.conditional:
            return None
        if labels is None:
            raise ValueError("a conditional model needs a label per image")
        return F.one_hot(labels.long(), self.num_labels).float()

    # -- corruption of the input ------------------------------------------------------------

    def corrupt(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """What the encoder reads: the images, noisy images (fresh noise from `generator` at
        every call) or downsampled images. [b, c, h, w] -> [b, *input_shape]."""
        m = self.config.model
        if m.corruption == "gaussian":
            noise = torch.randn(images.shape, generator=generator)
            return (images + m.noise_level * noise).clamp(0.0, 1.0)
        if m.corruption == "salt_pepper":
            hit = torch.rand(images.shape, generator=generator) < m.noise_level
            salt = (torch.rand(images.shape, generator=generator) < 0.5).to(images.dtype)
            return torch.where(hit, salt, images)
        if m.corruption == "downsample":
            return F.avg_pool2d(images, m.downsample)
        return images

    def display_input(self, inputs: torch.Tensor) -> torch.Tensor:
        """Encoder inputs at the image size for pictures (nearest-neighbour upsampling)."""
        if inputs.shape[-2:] == self.image_shape[-2:]:
            return inputs
        return F.interpolate(inputs, size=self.image_shape[-2:], mode="nearest")

    # -- encoding and decoding --------------------------------------------------------------

    def encode(
        self, inputs: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs [batch, *input_shape] -> (code, zeros), each [batch, z_size]."""
        code = self.code(self.encoder(inputs, self.one_hot(labels)))
        return code, torch.zeros_like(code)

    def latent(self, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The latent a training step decodes: the code itself."""
        return mu

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z [batch, z_size] -> pixel logits [batch, channels, height, width]."""
        return self.decoder(z, self.one_hot(labels))

    def pixel_means(self, logits: torch.Tensor) -> torch.Tensor:
        """The decoded images: the likelihood's mean of each pixel, in [0, 1]."""
        return torch.sigmoid(logits)

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Latents to decode into new images, [n, z_size]: from the running Gaussian of the
        training codes (an autoencoder has no prior of its own)."""
        eps = torch.randn(n, self.z_size, generator=generator)
        return self.code_mean + self.code_var.clamp_min(0).sqrt() * eps

    def reconstruction_nats(self, logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of the images, summed over pixels: [batch] nats."""
        m = self.config.model
        if m.likelihood == "gaussian":
            log_norm = math.log(m.pixel_sigma * math.sqrt(2 * math.pi))
            nll = 0.5 * ((images - torch.sigmoid(logits)) / m.pixel_sigma).pow(2) + log_norm
        else:
            nll = F.binary_cross_entropy_with_logits(logits, images, reduction="none")
        return nll.flatten(1).sum(dim=1)

    @property
    def num_pixels(self) -> int:
        return math.prod(self.image_shape)

    # -- the Trainer's protocol -------------------------------------------------------------

    def augment(
        self, batch: tuple[torch.Tensor, torch.Tensor], generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images, labels) -> (encoder inputs, target images, labels); the inputs get fresh
        noise from the step's generator."""
        images, labels = batch
        return self.corrupt(images, generator), images, labels

    def training_loss(
        self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean per-pixel reconstruction loss (BCE for the Bernoulli likelihood)."""
        inputs, images, labels = batch
        code, _ = self.encode(inputs, labels)
        logits = self.decode(code, labels)
        per_pixel = self.reconstruction_nats(logits, images) / self.num_pixels
        loss = per_pixel.mean()
        with torch.no_grad():
            self.code_mean.lerp_(code.mean(dim=0), CODE_MOMENTUM)
            self.code_var.lerp_(code.var(dim=0, unbiased=False), CODE_MOMENTUM)
        return loss, {
            "loss": loss.item(),
            "r_loss": loss.item(),
            "accuracy": pixel_accuracy(logits, images),
        }

    @torch.no_grad()
    def evaluate_batch(
        self, batch: tuple[torch.Tensor, torch.Tensor], generator: torch.Generator
    ) -> dict[str, float]:
        """Sums over one held-out batch: reconstruction nats, BCE, PSNR of the output and of
        the baselines (the noisy input, or bicubic upsampling of the small input)."""
        images, labels = batch
        inputs = self.corrupt(images, generator)
        mu, sigma = self.encode(inputs, labels)
        z = mu + sigma * torch.randn(mu.shape, generator=generator)  # sigma is 0 for an AE
        logits = self.decode(z, labels)
        output = self.pixel_means(logits)
        sums = {
            "images": len(images),
            "recon_nats": self.reconstruction_nats(logits, images).sum().item(),
            "bce": F.binary_cross_entropy_with_logits(logits, images, reduction="sum").item(),
            "squared_error": (output - images).pow(2).sum().item(),
            "psnr_db": psnr(output, images).sum().item(),
            "pixel_correct": pixel_accuracy(logits, images) * images.numel(),
        }
        if self.variational:
            sums["kl"] = kl_to_standard_normal(mu, sigma).sum().item()
        corruption = self.config.model.corruption
        if corruption in ("gaussian", "salt_pepper"):
            sums["noisy_psnr_db"] = psnr(inputs, images).sum().item()
        if corruption == "downsample":
            bicubic = bicubic_upsample(inputs, self.config.model.downsample)
            sums["bicubic_psnr_db"] = psnr(bicubic, images).sum().item()
        return sums

    def summarize_evaluation(self, parts: list[dict]) -> dict[str, float]:
        """Per-image and per-pixel metrics from the sums of `evaluate_batch`."""
        total = {k: sum(p[k] for p in parts) for k in parts[0]}
        n = total["images"]
        pixels = n * self.num_pixels
        metrics: dict[str, float] = {"images": n}
        if self.variational:
            metrics["neg_elbo_nats"] = (total["recon_nats"] + total["kl"]) / n
            metrics["recon_nats"] = total["recon_nats"] / n
            metrics["kl_nats"] = total["kl"] / n
            metrics["kl_bits"] = total["kl"] / n / LN2
        metrics["bce_per_pixel"] = total["bce"] / pixels
        metrics["mse_per_pixel"] = total["squared_error"] / pixels
        metrics["pixel_accuracy"] = total["pixel_correct"] / pixels
        metrics["psnr_db"] = total["psnr_db"] / n
        for baseline in ("noisy_psnr_db", "bicubic_psnr_db"):
            if baseline in total:
                metrics[baseline] = total[baseline] / n
        return metrics

    @torch.no_grad()
    def epoch_end(self, run_dir: str | Path, epoch: int, dataset: Any) -> None:
        """Save `reconstructions-epoch-NNN.png` (originals, the inputs when corrupted, and the
        outputs, one row each) and `samples-epoch-NNN.png` (decoded latents; one row per label
        for a conditional model) into the run folder."""
        from musicvae_py.plotting import image_grid_png

        was_training = self.training
        self.eval()
        split = "valid" if dataset.num_examples("valid") else "train"
        count = min(8, dataset.num_examples(split))
        images, labels = dataset.batch(split, torch.arange(count))
        rows = self.picture_rows(images, labels, torch.Generator().manual_seed(0))
        image_grid_png(
            torch.cat(rows).numpy(),
            Path(run_dir) / f"reconstructions-epoch-{epoch:03d}.png",
            columns=count,
        )
        samples, columns = self.sample_grid(torch.Generator().manual_seed(1))
        image_grid_png(
            samples.numpy(), Path(run_dir) / f"samples-epoch-{epoch:03d}.png", columns=columns
        )
        self.train(was_training)

    @torch.no_grad()
    def picture_rows(
        self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
    ) -> list[torch.Tensor]:
        """[originals, (inputs if corrupted,) outputs], each [n, c, h, w] in [0, 1]."""
        inputs = self.corrupt(images, generator)
        mu, _ = self.encode(inputs, labels)
        outputs = self.pixel_means(self.decode(mu, labels))
        if self.config.model.corruption == "none":
            return [images, outputs]
        return [images, self.display_input(inputs), outputs]

    @torch.no_grad()
    def sample_grid(self, generator: torch.Generator) -> tuple[torch.Tensor, int]:
        """Decoded latents for a picture: 64 images in 8 columns, or 8 per label (one row each)
        for a conditional model; returns (images [n, c, h, w], columns)."""
        if self.conditional:
            labels = torch.arange(self.num_labels).repeat_interleave(8)
        else:
            labels = None
        n = 64 if labels is None else len(labels)
        z = self.prior_sample(n, generator)
        return self.pixel_means(self.decode(z, labels)), 8


class ImageVAE(ImageAutoencoder):
    """A VAE over images: Gaussian posterior with a log-variance head, N(0, I) prior, and a
    Bernoulli (or fixed-variance Gaussian) likelihood on the pixels."""

    variational = True

    def _build_head(self, features: int, z_size: int) -> None:
        self.posterior = GaussianHead(features, z_size, scale="logvar", init_std=0.01)

    def encode(
        self, inputs: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs [batch, *input_shape] -> posterior (mu, sigma), each [batch, z_size], with
        sigma = exp(0.5 * logvar)."""
        return self.posterior(self.encoder(inputs, self.one_hot(labels)))

    def latent(self, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The reparameterised sample z = mu + sigma * eps."""
        return reparameterize(mu, sigma)

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(0, I): [n, z_size]."""
        return torch.randn(n, self.z_size, generator=generator)

    def training_loss(
        self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean over the batch of the reconstruction nats summed over pixels, plus beta times
        the KL beyond the free bits (beta 1 and no free bits give the negative ELBO)."""
        t = self.config.train
        inputs, images, labels = batch
        mu, sigma = self.encode(inputs, labels)
        logits = self.decode(self.latent(mu, sigma), labels)
        r_loss = self.reconstruction_nats(logits, images)
        kl = kl_to_standard_normal(mu, sigma)
        beta = beta_at(step, t.max_beta, t.beta_rate)
        loss = r_loss.mean() + beta * free_bits_kl(kl, t.free_bits).mean()
        return loss, {
            "loss": loss.item(),
            "r_loss": r_loss.mean().item(),
            "kl_bits": (kl.mean() / LN2).item(),
            "beta": beta,
            "accuracy": pixel_accuracy(logits, images),
        }


def pixel_accuracy(logits: torch.Tensor, images: torch.Tensor) -> float:
    """Fraction of pixels on the same side of 0.5 in the output and the target."""
    return ((logits > 0) == (images > 0.5)).float().mean().item()


def build_image_model(config: Config) -> ImageAutoencoder:
    """The image model of `config`, after checking the settings that sizes alone cannot."""
    d, m = config.data, config.model
    problem = None
    if m.corruption not in CORRUPTIONS:
        problem = f"corruption {m.corruption!r} (known: {', '.join(CORRUPTIONS)})"
    elif m.likelihood not in LIKELIHOODS:
        problem = f"likelihood {m.likelihood!r} (known: {', '.join(LIKELIHOODS)})"
    elif m.corruption == "downsample" and (
        m.downsample < 2 or d.height % m.downsample or d.width % m.downsample
    ):
        problem = f"downsample x{m.downsample} of {d.height}x{d.width} images"
    elif m.likelihood == "gaussian" and m.pixel_sigma <= 0:
        problem = f"pixel_sigma {m.pixel_sigma}"
    elif m.z_size < 1 or (m.conditional and m.num_labels < 1):
        problem = f"z_size {m.z_size} with num_labels {m.num_labels}"
    if problem:
        raise ConfigError(f"config {config.name}: unsupported {problem}")
    if m.architecture == "image_vae":
        return ImageVAE(config)
    return ImageAutoencoder(config)
