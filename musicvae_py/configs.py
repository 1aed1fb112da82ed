"""Named configs: what data a model reads, how it is built, and how it is trained.

A `Config` is frozen and JSON-serialisable; the resolved config is saved beside every checkpoint
and is enough to rebuild the model. Units are in the field names or the comments: steps are
16th notes (4 steps per quarter), bits are KL bits (nats / ln 2).
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from musicvae_py.errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    """How MIDI becomes windows of event tokens."""

    kind: str = "melody"  # representation name, see musicvae_py.converters
    window_steps: int = 32  # 2 bars of 4/4 at 16 steps per bar
    hop_steps: int = 16  # windows start every 4/4 bar
    min_pitch: int = 21  # A0, lowest pitch kept
    max_pitch: int = 108  # C8, highest pitch kept
    programs: tuple[int, int] | None = (0, 31)  # inclusive program range, None keeps all
    gap_steps: int = 16  # this much silence ends a melody (one 4/4 bar)
    max_melody_steps: int = 1600  # melodies are cut to 100 bars before windowing
    transpose: int = 5  # training-time transposition, +- semitones
    bass_programs: tuple[int, int] = (32, 39)  # trio only: the bass part's program range

    @property
    def melody_classes(self) -> int:
        """Melody vocabulary: no event, note off, one note-on per pitch."""
        return 2 + self.max_pitch - self.min_pitch + 1

    @property
    def stream_classes(self) -> tuple[int, ...]:
        """Classes of each token stream of a step: melody, drums (one token per set of the 9
        drum classes, 2 ** 9), or the trio's melody, bass and drums."""
        if self.kind == "drums":
            return (512,)
        if self.kind == "trio":
            return (self.melody_classes, self.melody_classes, 512)
        return (self.melody_classes,)

    @property
    def num_classes(self) -> int:
        """Classes of the first (for melody and drums, the only) stream."""
        return self.stream_classes[0]

    @property
    def input_size(self) -> int:
        """Width of the encoder's input per step: one-hot tokens of every stream, except that
        drums alone are read as a 10-dim roll (9 class bits and a no-hit bit)."""
        return 10 if self.kind == "drums" else sum(self.stream_classes)

    @property
    def window_shape(self) -> tuple[int, ...]:
        """Shape of one stored window: a token per step, or per step and stream for a trio."""
        streams = len(self.stream_classes)
        return (self.window_steps,) if streams == 1 else (self.window_steps, streams)

    @property
    def storage_dtype(self) -> str:
        """The smallest unsigned integer type holding every token."""
        return "uint8" if max(self.stream_classes) <= 256 else "uint16"

    def window_problem(self, windows: np.ndarray) -> str | None:
        """Why stored windows [n, *window_shape] do not fit this config, or None."""
        if not len(windows):
            return None
        per_stream = windows.reshape(len(windows), self.window_steps, -1)
        for stream, classes in enumerate(self.stream_classes):
            top = per_stream[..., stream].max()
            if top >= classes:
                return f"token {top} of stream {stream} outside its {classes} classes"
        return None


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the recurrent VAE. Encoder sizes are per direction."""

    architecture: str = "rnn"  # selects the model class, see musicvae_py.models.registry
    encoder_sizes: tuple[int, ...] = (512,)
    decoder_sizes: tuple[int, ...] = (256, 256)
    z_size: int = 256
    conductor_sizes: tuple[int, ...] = ()  # empty: a flat decoder; else the conductor's layers
    bar_steps: int = 16  # steps per conductor output and per lower encoder level (one 4/4 bar)
    bar_encoder_sizes: tuple[int, ...] = ()  # non-empty: a hierarchical encoder whose upper
    # level (these sizes, per direction) reads the per-bar encodings of `encoder_sizes`


@dataclass(frozen=True)
class TrainConfig:
    """Loss, schedules and optimiser settings (see the README for the formulas)."""

    batch_size: int = 512
    free_bits: float = 0.0  # KL allowed for free, in bits, on the total KL per example
    max_beta: float = 0.2
    beta_rate: float = 0.99999  # beta = max_beta * (1 - beta_rate ** step)
    sampling_schedule: str = "inverse_sigmoid"  # constant | exponential | inverse_sigmoid
    sampling_rate: float = 1000.0
    learning_rate: float = 1e-3
    min_learning_rate: float = 1e-5
    decay_rate: float = 0.9999  # lr = (lr0 - lr_min) * decay_rate ** step + lr_min
    grad_clip: float = 1.0  # global-norm clip
    grad_norm_clip_to_zero: float = 1e4  # above this norm the step's gradients become zero
    num_steps: int = 50_000
    precision: str = "fp32"  # fp32 | bf16 (autocast)


# The config class of each data kind and of each model architecture: a saved config names its
# kind and architecture, and these say which dataclass rebuilds it.
DATA_CONFIG_CLASSES: dict[str, type] = {
    "melody": DataConfig,
    "drums": DataConfig,
    "trio": DataConfig,
}
MODEL_CONFIG_CLASSES: dict[str, type] = {"rnn": ModelConfig}


@dataclass(frozen=True)
class Config:
    """A complete, named experiment: data, model and training settings.

    `data` and `model` are instances of the classes that `DATA_CONFIG_CLASSES` and
    `MODEL_CONFIG_CLASSES` name for the data kind and the model architecture.
    """

    name: str
    data: Any = field(default_factory=DataConfig)
    model: Any = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; `Config.from_dict` reverses it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        """Rebuild a config saved by `to_dict`; unknown keys are an error."""
        try:
            data, model = d.get("data", {}), d.get("model", {})
            return cls(
                name=d["name"],
                data=data_config_from_dict(data),
                model=_build(
                    _lookup(MODEL_CONFIG_CLASSES, model.get("architecture", "rnn")), model
                ),
                train=_build(TrainConfig, d.get("train", {})),
                description=d.get("description", ""),
            )
        except (KeyError, TypeError, AttributeError) as err:
            raise ConfigError(f"invalid config: {err}") from err

    def replace(self, **sections: Any) -> "Config":
        """A copy with some fields of some sections changed: replace(train={'num_steps': 10})."""
        updates: dict[str, Any] = {}
        for section, values in sections.items():
            if section in ("name", "description"):
                updates[section] = values
                continue
            current = getattr(self, section)
            try:
                updates[section] = dataclasses.replace(current, **values)
            except TypeError as err:
                raise ConfigError(f"invalid override for {section}: {err}") from err
        return dataclasses.replace(self, **updates)


def data_config_from_dict(values: dict[str, Any]) -> Any:
    """Rebuild a data config saved with `dataclasses.asdict`, by its kind."""
    return _build(_lookup(DATA_CONFIG_CLASSES, values.get("kind", "melody")), values)


def _lookup(classes: dict[str, type], name: str) -> type:
    if name not in classes:
        raise ConfigError(f"unknown config kind {name!r} (known: {', '.join(sorted(classes))})")
    return classes[name]


def _build(kind: type, values: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"unknown {kind.__name__} fields: {sorted(unknown)}")
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return kind(**fixed)


_MELODY_2BAR = DataConfig()
_MELODY_16BAR = DataConfig(window_steps=256, programs=None, transpose=0)
_DRUMS_2BAR = DataConfig(kind="drums", programs=None, transpose=0)
_TRIO_16BAR = DataConfig(
    kind="trio", window_steps=256, programs=(0, 31), gap_steps=32, transpose=0
)  # a part's silences of up to 2 bars still count as playing
_TINY_TRAIN = TrainConfig(
    batch_size=8,
    max_beta=0.02,  # a light KL keeps the posterior means from growing without bound
    beta_rate=0.0,
    sampling_schedule="constant",
    sampling_rate=0.0,
    learning_rate=1e-2,
    decay_rate=1.0,
    num_steps=200,
)
_TEACHER_FORCED_16BAR = TrainConfig(
    free_bits=256.0, max_beta=0.2, beta_rate=0.0, sampling_schedule="constant", sampling_rate=0.0
)
# The reference's 16-bar loss, at a batch and step count that fit one CPU core in about
# half an hour
_CPU_16BAR = dataclasses.replace(
    _TEACHER_FORCED_16BAR, batch_size=16, learning_rate=2e-3, num_steps=2_500
)

CONFIGS: dict[str, Config] = {
    "mel_2bar_small": Config(
        name="mel_2bar_small",
        description="2-bar melodies, the reference's cat-mel_2bar_small sizes",
        data=_MELODY_2BAR,
        model=ModelConfig(encoder_sizes=(512,), decoder_sizes=(256, 256), z_size=256),
        train=TrainConfig(),
    ),
    "mel_2bar_base": Config(
        name="mel_2bar_base",
        description="2-bar melodies, sized to train on a laptop CPU within an hour",
        data=_MELODY_2BAR,
        model=ModelConfig(encoder_sizes=(256,), decoder_sizes=(256, 256), z_size=128),
        train=TrainConfig(
            batch_size=64,
            free_bits=48.0,
            max_beta=0.2,
            beta_rate=0.99995,
            sampling_schedule="constant",
            sampling_rate=0.0,
            learning_rate=3e-3,
            decay_rate=0.9999,
            num_steps=24_000,
        ),
    ),
    "mel_2bar_tiny": Config(
        name="mel_2bar_tiny",
        description="2-bar melodies, tiny, for tests",
        data=_MELODY_2BAR,
        model=ModelConfig(encoder_sizes=(32,), decoder_sizes=(32,), z_size=8),
        train=_TINY_TRAIN,
    ),
    "drums_2bar_small": Config(
        name="drums_2bar_small",
        description="2-bar drums, 9-class kit, the reference's cat-drums_2bar_small sizes",
        data=_DRUMS_2BAR,
        model=ModelConfig(encoder_sizes=(512,), decoder_sizes=(256, 256), z_size=256),
        train=TrainConfig(free_bits=48.0, max_beta=0.2, beta_rate=0.0),
    ),
    "drums_2bar_tiny": Config(
        name="drums_2bar_tiny",
        description="2-bar drums, tiny, for tests",
        data=_DRUMS_2BAR,
        model=ModelConfig(encoder_sizes=(32,), decoder_sizes=(32,), z_size=8),
        train=_TINY_TRAIN,
    ),
    "mel_16bar_flat": Config(
        name="mel_16bar_flat",
        description="16-bar melodies, flat decoder, CPU-sized: the baseline of mel_16bar_hierdec",
        data=_MELODY_16BAR,
        model=ModelConfig(encoder_sizes=(256,), decoder_sizes=(256, 256), z_size=128),
        train=_CPU_16BAR,
    ),
    "mel_16bar_hierdec": Config(
        name="mel_16bar_hierdec",
        description="16-bar melodies, conductor decoder, CPU-sized (the bundled model's)",
        data=_MELODY_16BAR,
        model=ModelConfig(
            encoder_sizes=(256,), decoder_sizes=(256,), conductor_sizes=(256,), z_size=128
        ),
        train=_CPU_16BAR,
    ),
    "mel_16bar_flat_large": Config(
        name="mel_16bar_flat_large",
        description="16-bar melodies, flat decoder, the reference's flat-mel_16bar sizes",
        data=_MELODY_16BAR,
        model=ModelConfig(encoder_sizes=(2048, 2048), decoder_sizes=(2048, 2048, 2048), z_size=512),
        train=_TEACHER_FORCED_16BAR,
    ),
    "mel_16bar_hierdec_large": Config(
        name="mel_16bar_hierdec_large",
        description="16-bar melodies, conductor decoder, the reference's hierdec-mel_16bar sizes",
        data=_MELODY_16BAR,
        model=ModelConfig(
            encoder_sizes=(2048, 2048),
            decoder_sizes=(1024, 1024),
            conductor_sizes=(1024, 1024),
            z_size=512,
        ),
        train=_TEACHER_FORCED_16BAR,
    ),
    "trio_16bar_hierdec": Config(
        name="trio_16bar_hierdec",
        description="16-bar trios (melody, bass, drums), conductor decoder, reference sizes",
        data=_TRIO_16BAR,
        model=ModelConfig(
            encoder_sizes=(2048, 2048),
            decoder_sizes=(1024, 1024),
            conductor_sizes=(1024, 1024),
            z_size=512,
        ),
        train=dataclasses.replace(_TEACHER_FORCED_16BAR, batch_size=256),
    ),
    "trio_16bar_hierdec_tiny": Config(
        name="trio_16bar_hierdec_tiny",
        description="16-bar trios, conductor decoder, tiny, for tests",
        data=_TRIO_16BAR,
        model=ModelConfig(
            encoder_sizes=(16,), decoder_sizes=(16,), conductor_sizes=(16,), z_size=8
        ),
        train=_TINY_TRAIN,
    ),
    "mel_16bar_hierdec_tiny": Config(
        name="mel_16bar_hierdec_tiny",
        description="16-bar melodies, conductor decoder, tiny, for tests",
        data=_MELODY_16BAR,
        model=ModelConfig(
            encoder_sizes=(16,), decoder_sizes=(16,), conductor_sizes=(16,), z_size=8
        ),
        train=_TINY_TRAIN,
    ),
}


def get_config(name: str) -> Config:
    """Look up a named config; the error lists the known names."""
    try:
        return CONFIGS[name]
    except KeyError:
        known = ", ".join(sorted(CONFIGS))
        raise ConfigError(f"unknown config {name!r} (known: {known})") from None
