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
        """n windows decoded from z drawn from the prior (`prior_sample`): int64
        [n, *window_shape]."""
        generator = _generator(seed)
        z = self.prior_sample(n, generator)
        return self.decode(z.numpy(), temperature, None if seed is None else seed + 1)

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latents float [n, z_size] from the model's prior: N(0, I), or for a roll model
        with a fitted prior the Gaussian of its training latents."""
        eps = torch.randn(n, self.z_size, generator=generator)
        to_prior = getattr(self.model, "from_standard_normal", None)
        return eps if to_prior is None else to_prior(eps)

    def _as_batch(self, windows: np.ndarray) -> np.ndarray:
        """One window [*window_shape] or several [n, *window_shape] -> [n, *window_shape]."""
        windows = np.asarray(windows)
        return windows[None] if windows.shape == self.config.data.window_shape else windows

    def interpolate(
        self,
        *inputs: np.ndarray,
        steps: int = 5,
        temperature: float = 0.5,
        seed: int | None = None,
    ) -> np.ndarray:
        """Slerp through the posterior means of two or more windows, each leg `steps` points
        with both endpoints, and decode the path as one piece whose segments join (see
        `walk`): [points, *window_shape], segment k being point k."""
        if len(inputs) < 2 or steps < 2:
            raise ValueError("an interpolation needs at least 2 inputs and 2 steps")
        _, mu, _ = self.encode(np.concatenate([self._as_batch(w) for w in inputs]))
        path = latent_path(torch.from_numpy(mu), steps)
        return self.walk(path.numpy(), temperature, seed)

    def long_sample(
        self,
        bars: int,
        temperature: float = 0.5,
        seed: int | None = None,
        anchors: np.ndarray | None = None,
        bars_per_anchor: int = 8,
    ) -> np.ndarray:
        """A piece of `bars` 4/4 bars, longer than a window: a smooth path through latent
        anchors (float [k, z_size], default one z from the prior every `bars_per_anchor` bars),
        one window decoded per point and the windows joined by `walk`. Returns
        [bars * 16(, streams)] tokens."""
        steps = bars * 16
        segments = -(-steps // self.steps)
        generator = _generator(seed)
        if anchors is None:
            count = max(2, -(-bars // bars_per_anchor) + 1)
            anchors = self.prior_sample(count, generator).numpy()
        if len(anchors) == 1:
            anchors = np.concatenate([anchors, anchors])
        points = _resample_path(torch.as_tensor(anchors, dtype=torch.float32), segments)
        pieces = self.walk(points.numpy(), temperature, None if seed is None else seed + 1)
        return np.concatenate(list(pieces))[:steps]

    @torch.no_grad()
    def walk(
        self,
        z: np.ndarray,
        temperature: float = 0.5,
        seed: int | None = None,
        candidates: int = 8,
        max_rounds: int = 4,
    ) -> np.ndarray:
        """Decode consecutive latent points float [k, z_size] into windows that join into one
        piece: [k, *window_shape].

        Each window's decoder starts from the last tokens of the window before (so a note
        sounding at the seam can go on). Of `candidates` draws the one kept leaves no silence of
        a bar or more across the seam and no silence of half a bar or more at its own end (the
        next seam would inherit it), and among those the least silence in all; while no draw
        qualifies, up to `max_rounds` rounds are drawn. Windows are whole bars, so the beat
        goes on. At temperature 0 there is one candidate.
        """
        generator = _generator(seed)
        count = 1 if temperature <= 0 else candidates
        bar = 16
        pieces: list[np.ndarray] = []
        for point in torch.as_tensor(z, dtype=torch.float32):
            first = None
            if pieces:
                last = torch.as_tensor(pieces[-1][-1]).long().reshape(1, -1)
                first = last.expand(count, -1)
            best, best_key = None, None
            for _ in range(max_rounds):
                drawn = self.model.generate(
                    point.expand(count, -1), temperature, generator, first_tokens=first
                ).numpy()
                for candidate in drawn:
                    gap = self.seam_silence(pieces[-1], candidate) if pieces else 0
                    tail = self.seam_silence(candidate, candidate[:0])
                    key = (gap >= bar, tail >= bar // 2, gap + tail)
                    if best_key is None or key < best_key:
                        best, best_key = candidate, key
                if not (best_key[0] or best_key[1]) or count == 1:
                    break
            pieces.append(best)
        return np.stack(pieces)

    def seam_silence(self, before: np.ndarray, after: np.ndarray) -> int:
        """Steps of silence (no note sounding in any track) across the seam between two
        windows played one after the other; with an empty `after`, the silence at the end of
        `before`."""
        joined = np.concatenate([before, after])
        sounding = np.zeros(len(joined), dtype=bool)
        for track in self.tracks(joined):
            for _, start, end in track.notes:
                sounding[start:end] = True
        return silence_across(sounding, len(before))

    def reconstruct(
        self, tokens: np.ndarray, temperature: float = 0.5, seed: int | None = None
    ) -> np.ndarray:
        """Encode windows int [n, steps] to their means and decode them again."""
        _, mu, _ = self.encode(self._as_batch(tokens))
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


def silence_across(sounding: np.ndarray, step: int) -> int:
    """Steps of silence in bool [steps] (True where a note sounds) spanning the boundary
    before `step`: 0 when a note sounds on either side of it."""
    left = step - 1
    while left >= 0 and not sounding[left]:
        left -= 1
    right = step
    while right < len(sounding) and not sounding[right]:
        right += 1
    return right - left - 1


def latent_path(anchors: torch.Tensor, steps: int) -> torch.Tensor:
    """Slerp legs between consecutive anchors [k, z_size], `steps` points per leg with both
    endpoints, shared endpoints once: [(k - 1) * (steps - 1) + 1, z_size]."""
    fractions = torch.linspace(0.0, 1.0, steps)
    legs = [slerp(anchors[i], anchors[i + 1], fractions) for i in range(len(anchors) - 1)]
    return torch.cat([legs[0]] + [leg[1:] for leg in legs[1:]])


def _resample_path(anchors: torch.Tensor, points: int) -> torch.Tensor:
    """`points` evenly spaced positions along the slerp path through anchors [k, z_size]."""
    where = torch.linspace(0.0, len(anchors) - 1.0, points)
    leg = where.floor().long().clamp(max=len(anchors) - 2)
    fraction = where - leg
    return torch.stack(
        [
            slerp(anchors[i], anchors[i + 1], fraction[k : k + 1])[0]
            for k, i in enumerate(leg.tolist())
        ]
    )
