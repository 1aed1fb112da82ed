"""The Python API for trained models: sample, encode, decode, interpolate, reconstruct.

    from musicvae_py import TrainedModel
    model = TrainedModel.load()                   # the bundled 2-bar melody model
    tokens = model.sample(4, temperature=0.5, seed=1)
    model.save_midi(tokens[0], "melody.mid")
    z, mu, sigma = model.encode(model.windows_from_midi("tune.mid").windows[:1])

Token arrays are int64 [n, steps]; latent arrays are float32 [n, z_size].
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from musicvae_py.configs import Config
from musicvae_py.converters.midi_io import NoteList, write_midi
from musicvae_py.converters.registry import get_converter
from musicvae_py.errors import MidiReadError, MultipleExamplesError, NoExamplesError
from musicvae_py.models.core import slerp
from musicvae_py.training.checkpoint import load_model

log = logging.getLogger(__name__)


@dataclass
class InputWindows:
    """The windows one MIDI file yields, with where each starts and its meter."""

    path: str
    windows: np.ndarray  # int64 [n, steps]
    starts: list[int]
    meters: list[str]

    def describe(self) -> list[str]:
        """One line per window: its index, the 16th-note steps it spans, and its meter."""
        width = self.windows.shape[1]
        return [
            f"[{i}] steps {start}-{start + width - 1} ({meter})"
            for i, (start, meter) in enumerate(zip(self.starts, self.meters, strict=True))
        ]

    def pick(self, index: int | None) -> np.ndarray:
        """One window, int64 [1, steps]; several windows and no index is an error."""
        if index is None:
            if len(self.windows) > 1:
                raise MultipleExamplesError(
                    f"{self.path}: yields {len(self.windows)} windows; choose one with --window",
                    len(self.windows),
                )
            index = 0
        if not 0 <= index < len(self.windows):
            raise NoExamplesError(
                f"{self.path}: window {index} does not exist (0-{len(self.windows) - 1})"
            )
        return self.windows[index : index + 1]


class TrainedModel:
    """A trained music model (melody or drums, flat or hierarchical), loaded from a bundled
    name or a checkpoint."""

    def __init__(self, model: torch.nn.Module, config: Config):
        self.model = model.eval()
        self.config = config

    @classmethod
    def load(cls, spec: str | Path | None = None) -> "TrainedModel":
        """Load a bundled model by name (default "mel_2bar"), a run folder or a checkpoint."""
        model, config = load_model(spec)
        return cls(model, config)

    @property
    def steps(self) -> int:
        return self.config.data.window_steps

    @property
    def z_size(self) -> int:
        return self.config.model.z_size

    def windows_from_midi(self, path: str | Path) -> InputWindows:
        """All windows of a MIDI file; raises with the reason when there are none."""
        from musicvae_py.data.prepare import convert_file

        result = convert_file(str(path), self.config.data)
        if result.windows is None:
            if result.reason in ("unreadable", "too large"):
                raise MidiReadError(str(path), result.reason, result.detail)
            detail = f" ({result.detail})" if result.detail else ""
            if result.reason == "too short":
                detail = f" (nothing lasts {self.steps} steps)"
            raise NoExamplesError(f"{path}: {result.reason}{detail}")
        return InputWindows(
            str(path), result.windows.astype(np.int64), result.starts, result.meters
        )

    @torch.no_grad()
    def encode(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """windows [n, *window_shape] -> (z, mu, sigma), each float32 [n, z_size]."""
        mu, sigma = self.model.encode(torch.as_tensor(np.asarray(windows)))
        z = mu + sigma * torch.randn_like(sigma)
        return z.numpy(), mu.numpy(), sigma.numpy()

    @torch.no_grad()
    def decode(
        self, z: np.ndarray, temperature: float = 0.5, seed: int | None = None
    ) -> np.ndarray:
        """z float [n, z_size] -> windows [n, *window_shape]; temperature 0 is greedy."""
        z = torch.as_tensor(z, dtype=torch.float32)
        return self.model.generate(z, temperature, _generator(seed)).numpy()

    def sample(self, n: int, temperature: float = 0.5, seed: int | None = None) -> np.ndarray:
        """n melodies decoded from z ~ N(0, I): int64 [n, steps]."""
        generator = _generator(seed)
        z = torch.randn(n, self.z_size, generator=generator)
        return self.decode(z.numpy(), temperature, None if seed is None else seed + 1)

    def interpolate(
        self,
        start: np.ndarray,
        end: np.ndarray,
        steps: int = 5,
        temperature: float = 0.5,
        seed: int | None = None,
    ) -> np.ndarray:
        """Slerp between the posterior means of two windows (int [steps] or [1, steps]),
        endpoints included: int64 [steps, window_steps]."""
        if steps < 2:
            raise ValueError("an interpolation needs at least 2 steps")
        _, mu, _ = self.encode(np.stack([np.ravel(start), np.ravel(end)]))
        a, b = torch.from_numpy(mu[0]), torch.from_numpy(mu[1])
        path = slerp(a, b, torch.linspace(0.0, 1.0, steps))
        return self.decode(path.numpy(), temperature, seed)

    def reconstruct(
        self, tokens: np.ndarray, temperature: float = 0.5, seed: int | None = None
    ) -> np.ndarray:
        """Encode windows int [n, steps] to their means and decode them again."""
        _, mu, _ = self.encode(tokens)
        return self.decode(mu, temperature, seed)

    def tracks(self, window: np.ndarray, program: int = 0, velocity: int = 80) -> list[NoteList]:
        """Output tracks of one window, or of several joined in time."""
        return get_converter(self.config.data.kind).tracks(
            window, self.config.data, program, velocity
        )

    def save_midi(
        self,
        tokens: np.ndarray,
        path: str | Path,
        qpm: float = 120.0,
        program: int = 0,
        velocity: int = 80,
        overwrite: bool = True,
    ) -> None:
        """Write one token sequence (any length) as a MIDI file."""
        write_midi(path, self.tracks(tokens, program, velocity), qpm=qpm, overwrite=overwrite)


def _generator(seed: int | None) -> torch.Generator | None:
    return None if seed is None else torch.Generator().manual_seed(seed)
