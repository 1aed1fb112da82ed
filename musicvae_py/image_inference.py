"""The Python API for trained image models: sample, encode, decode, interpolate, reconstruct,
denoise, super-resolve, embed, and decode a manifold.

    from musicvae_py.image_inference import ImageModel
    model = ImageModel.load()                     # the bundled 2-d MNIST VAE
    images = model.sample(16, seed=1)             # float32 [16, 1, 28, 28] in [0, 1]
    z, mu, sigma = model.encode(images)           # float32 [16, 2] each
    grid = model.manifold(15)                     # float32 [225, 1, 28, 28]

Images are float32 numpy arrays [n, channels, height, width] with pixel values in [0, 1]
(`read_images` reads PNG/JPEG files into that form); latents are float32 [n, z_size]; labels
are int [n] (a conditional model needs them to encode and decode).
"""

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from musicvae_py.configs import Config
from musicvae_py.errors import ConfigError
from musicvae_py.models.core import slerp
from musicvae_py.models.image_models import bicubic_upsample, psnr
from musicvae_py.training.checkpoint import load_model

DEFAULT_IMAGE_MODEL = "mnist_vae2d"
ENCODE_BATCH = 1000  # images encoded at once, to bound memory on large sets


class ImageModel:
    """A trained image autoencoder or VAE, loaded from a bundled name or a checkpoint."""

    def __init__(self, model: torch.nn.Module, config: Config, name: str = ""):
        self.model = model.eval()
        self.config = config
        self.name = name or config.name

    @classmethod
    def load(cls, spec: str | Path | None = None) -> "ImageModel":
        """Load a bundled model by name (default "mnist_vae2d"), a run folder or a checkpoint
        folder; a music model is refused."""
        spec = DEFAULT_IMAGE_MODEL if spec is None else spec
        model, config = load_model(spec)
        if config.data.kind != "image":
            raise ConfigError(f"{spec}: a {config.data.kind} model, not an image model")
        return cls(model, config, str(spec))

    # -- what the model is ------------------------------------------------------------------

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """[channels, height, width] of the images the model decodes."""
        return self.model.image_shape

    @property
    def z_size(self) -> int:
        return self.config.model.z_size

    @property
    def variational(self) -> bool:
        return self.model.variational

    @property
    def conditional(self) -> bool:
        return self.config.model.conditional

    @property
    def corruption(self) -> str:
        """none, gaussian, salt_pepper (denoising models) or downsample (super-resolution)."""
        return self.config.model.corruption

    def require(self, what: str, ok: bool, need: str) -> None:
        """Refuse an operation this model cannot do, naming the model and what it needs."""
        if not ok:
            raise ConfigError(f"model {self.name}: {what} needs {need}")

    # -- reading images ---------------------------------------------------------------------

    def read_images(self, paths: list[str | Path], size: str = "image") -> np.ndarray:
        """PNG/JPEG files resized to the model's image size (or with size="input", to the
        size its encoder reads): float32 [n, c, h, w] in [0, 1]."""
        from musicvae_py.data.images import read_image_file

        data = self.config.data
        if size == "input":
            c, h, w = self.model.input_shape
            data = dataclasses.replace(data, height=h, width=w, channels=c)
        return np.stack([read_image_file(p, data) for p in paths]).astype(np.float32) / 255.0

    # -- latents ----------------------------------------------------------------------------

    def _labels(self, labels: Any, n: int) -> torch.Tensor | None:
        """Labels long [n] for a conditional model (one value applies to all), else None."""
        if not self.conditional:
            return None
        count = self.config.model.num_labels
        if labels is None:
            raise ConfigError(f"model {self.name} is conditional: give a label (0-{count - 1})")
        labels = torch.as_tensor(np.broadcast_to(np.asarray(labels), (n,)).copy()).long()
        bad = labels[(labels < 0) | (labels >= count)]
        if len(bad):
            raise ConfigError(f"model {self.name}: label {bad[0].item()} is not in 0-{count - 1}")
        return labels

    def _inputs(self, images: np.ndarray) -> torch.Tensor:
        """What the encoder reads for clean images: the images, or downsampled for a
        super-resolution model. No noise is added here."""
        x = torch.as_tensor(np.asarray(images, dtype=np.float32))
        if self.corruption == "downsample" and x.shape[1:] == self.image_shape:
            return F.avg_pool2d(x, self.config.model.downsample)
        return x

    @torch.no_grad()
    def encode(
        self, images: np.ndarray, labels: Any = None, seed: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """images [n, c, h, w] -> (z, mu, sigma), each float32 [n, z_size]; z is a posterior
        sample (the code itself for an autoencoder, whose sigma is 0)."""
        x = self._inputs(images)
        labels = self._labels(labels, len(x))
        parts = [
            self.model.encode(
                x[i : i + ENCODE_BATCH], None if labels is None else labels[i : i + ENCODE_BATCH]
            )
            for i in range(0, len(x), ENCODE_BATCH)
        ]
        mu = torch.cat([mu for mu, _ in parts])
        sigma = torch.cat([sigma for _, sigma in parts])
        z = mu + sigma * torch.randn(mu.shape, generator=_generator(seed))
        return z.numpy(), mu.numpy(), sigma.numpy()

    @torch.no_grad()
    def decode(self, z: np.ndarray, labels: Any = None) -> np.ndarray:
        """z float [n, z_size] -> images float32 [n, c, h, w]: the mean of each pixel."""
        z = torch.as_tensor(np.asarray(z, dtype=np.float32))
        return self.model.pixel_means(self.model.decode(z, self._labels(labels, len(z)))).numpy()

    def embed(self, images: np.ndarray, labels: Any = None) -> np.ndarray:
        """Posterior means (codes) of images: float32 [n, z_size]."""
        return self.encode(images, labels)[1]

    def sample(self, n: int, seed: int | None = None, label: Any = None) -> np.ndarray:
        """n new images [n, c, h, w], decoded from the prior (a VAE) or from a Gaussian fitted
        to the training codes (an autoencoder); a conditional model needs `label`."""
        z = self.model.prior_sample(n, _generator(seed))
        return self.decode(z.numpy(), label)

    def reconstruct(self, images: np.ndarray, labels: Any = None) -> np.ndarray:
        """Encode images to their means and decode them: [n, c, h, w] -> [n, c, h, w]."""
        return self.decode(self.embed(images, labels), labels)

    def interpolate(
        self,
        start: np.ndarray,
        end: np.ndarray,
        steps: int = 8,
        method: str = "linear",
        labels: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """Decode a path between the latent means of two images ([c, h, w] or [1, c, h, w]),
        both endpoints included: float32 [steps, c, h, w]. `method` is linear or slerp; a
        conditional model blends the two labels' one-hot vectors along the path."""
        if steps < 2:
            raise ConfigError("an interpolation needs at least 2 steps")
        if method not in ("linear", "slerp"):
            raise ConfigError(f"unknown interpolation {method!r} (linear or slerp)")
        pair = np.stack([np.reshape(start, self.image_shape), np.reshape(end, self.image_shape)])
        mu = torch.from_numpy(self.embed(pair, None if labels is None else list(labels)))
        t = torch.linspace(0.0, 1.0, steps)
        if method == "slerp":
            path = slerp(mu[0], mu[1], t)
        else:
            path = (1 - t[:, None]) * mu[0] + t[:, None] * mu[1]
        onehot = None
        if self.conditional:
            ends = self.model.one_hot(self._labels(list(labels), 2))
            onehot = (1 - t[:, None]) * ends[0] + t[:, None] * ends[1]
        with torch.no_grad():
            return self.model.pixel_means(self.model.decoder(path, onehot)).numpy()

    # -- denoising and super-resolution -----------------------------------------------------

    def add_noise(
        self,
        images: np.ndarray,
        seed: int | None = None,
        noise: str | None = None,
        level: float | None = None,
    ) -> np.ndarray:
        """The images with noise of the model's kind and level (or those given): gaussian
        (std `level`, clipped to [0, 1]) or salt_pepper (a `level` fraction of pixels)."""
        kind = noise or self.corruption
        if kind not in ("gaussian", "salt_pepper"):
            raise ConfigError(f"unknown noise {kind!r} (gaussian or salt_pepper)")
        level = self.config.model.noise_level if level is None else level
        x = torch.as_tensor(np.asarray(images, dtype=np.float32))
        generator = _generator(seed)
        if kind == "gaussian":
            return (x + level * torch.randn(x.shape, generator=generator)).clamp(0, 1).numpy()
        hit = torch.rand(x.shape, generator=generator) < level
        salt = (torch.rand(x.shape, generator=generator) < 0.5).float()
        return torch.where(hit, salt, x).numpy()

    def denoise(self, noisy: np.ndarray, labels: Any = None) -> np.ndarray:
        """The model's output for noisy images: [n, c, h, w] -> [n, c, h, w]."""
        return self.reconstruct(noisy, labels)

    def downsample(self, images: np.ndarray) -> np.ndarray:
        """Full-size images -> the small images a super-resolution model reads (area average)."""
        self.require("super-resolution", self.corruption == "downsample", "a superres model")
        return self._inputs(images).numpy()

    def superres(self, low: np.ndarray, labels: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Small images [n, c, h/f, w/f] -> (the model's full-size output, bicubic upsampling),
        each [n, c, h, w]."""
        self.require("super-resolution", self.corruption == "downsample", "a superres model")
        output = self.reconstruct(low, labels)
        low_t = torch.as_tensor(np.asarray(low, dtype=np.float32))
        bicubic = bicubic_upsample(low_t, self.config.model.downsample).numpy()
        return output, bicubic

    # -- pictures of the latent space -------------------------------------------------------

    def manifold_axis(self, grid: int, span: float | None = None) -> np.ndarray:
        """The latent values along each axis of a manifold picture, float32 [grid]: equally
        probable steps of N(0, 1) (quantiles 0.05 .. 0.95) for a VAE, the codes' mean plus or
        minus 2 standard deviations for an autoencoder; `span` gives [-span, span] instead."""
        if span is not None:
            return np.linspace(-span, span, grid, dtype=np.float32)
        if self.variational:
            q = torch.linspace(0.05, 0.95, grid, dtype=torch.float64)
            return torch.special.ndtri(q).float().numpy()
        return np.linspace(-2.0, 2.0, grid, dtype=np.float32)

    def manifold(self, grid: int = 15, span: float | None = None, label: Any = None) -> np.ndarray:
        """Images decoded over a grid of the 2-d latent, row by row from the top left (z1
        grows to the right, z2 upwards): float32 [grid * grid, c, h, w]."""
        self.require("a manifold", self.z_size == 2, f"a 2-d latent (it has {self.z_size})")
        axis = torch.from_numpy(self.manifold_axis(grid, span))
        z1 = axis.repeat(grid)
        z2 = axis.flip(0).repeat_interleave(grid)
        z = torch.stack([z1, z2], dim=1)
        if not self.variational and span is None:
            z = self.model.code_mean + self.model.code_var.clamp_min(0).sqrt() * z
        return self.decode(z.numpy(), label)

    def evaluate(
        self, dataset: Any, split: str = "valid", max_images: int | None = None, seed: int = 0
    ) -> dict[str, float]:
        """Held-out metrics (see `ImageAutoencoder.summarize_evaluation`)."""
        from musicvae_py.training.evaluate import evaluate_model

        dataset.check_compatible(self.config)
        return evaluate_model(self.model, dataset, split, seed=seed, max_examples=max_images)


def pca_2d(points: np.ndarray, fit: np.ndarray | None = None) -> np.ndarray:
    """Project points [n, d] on the first two principal axes of `fit` [m, d] (default: the
    points themselves): float32 [n, 2]."""
    fit = points if fit is None else fit
    fit_t = torch.as_tensor(np.asarray(fit, dtype=np.float64)).flatten(1)
    mean = fit_t.mean(dim=0)
    _, _, vh = torch.linalg.svd(fit_t - mean, full_matrices=False)
    x = torch.as_tensor(np.asarray(points, dtype=np.float64)).flatten(1)
    return ((x - mean) @ vh[:2].T).float().numpy()


def knn_accuracy(points: np.ndarray, labels: np.ndarray, k: int = 5, chunk: int = 1024) -> float:
    """Leave-one-out k-nearest-neighbour label accuracy of an embedding: each point takes the
    majority label of its k nearest other points (ties go to the smallest label)."""
    x = torch.as_tensor(np.asarray(points, dtype=np.float32))
    y = torch.as_tensor(np.asarray(labels)).long()
    if len(x) <= k:
        raise ConfigError(f"a {k}-nearest-neighbour accuracy needs more than {k} points")
    classes = int(y.max()) + 1
    correct = 0
    for i in range(0, len(x), chunk):
        distances = torch.cdist(x[i : i + chunk], x)
        rows = torch.arange(i, min(i + chunk, len(x)))
        distances[torch.arange(len(rows)), rows] = float("inf")  # not its own neighbour
        nearest = distances.topk(k, largest=False).indices
        votes = F.one_hot(y[nearest], classes).sum(dim=1)
        correct += (votes.argmax(dim=1) == y[rows]).sum().item()
    return correct / len(x)


def psnr_db(output: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Peak signal-to-noise ratio of each image pair [n, c, h, w] in [0, 1]: float [n] dB."""
    return psnr(torch.as_tensor(output), torch.as_tensor(target)).numpy()


def _generator(seed: int | None) -> torch.Generator | None:
    return None if seed is None else torch.Generator().manual_seed(seed)
