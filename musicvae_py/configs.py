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
    _TEACHER_FORCED_16BAR, batch_size=16, learning_rate=1e-3, num_steps=2_500
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
    "drums_2bar_base": Config(
        name="drums_2bar_base",
        description="2-bar drums, 9-class kit, CPU-sized (the bundled drums_2bar model's)",
        data=_DRUMS_2BAR,
        model=ModelConfig(encoder_sizes=(256,), decoder_sizes=(256, 256), z_size=128),
        train=TrainConfig(
            batch_size=128,
            free_bits=128.0,
            max_beta=0.2,
            beta_rate=0.9999,
            sampling_schedule="constant",
            sampling_rate=0.0,
            learning_rate=3e-3,
            decay_rate=0.9995,
            num_steps=6_000,
        ),
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


# ---------------------------------------------------------------------------------------------
# Image configs: autoencoders and VAEs over pictures (MNIST IDX files or a folder of images).


@dataclass(frozen=True)
class ImageDataConfig:
    """Images as the image models read them: pixel values in [0, 1], [channels, height, width].
    Folder images are resized to this size; IDX files must already have it."""

    kind: str = "image"
    height: int = 28  # pixels
    width: int = 28  # pixels
    channels: int = 1  # 1 grey, 3 colour (RGB)
    valid_fraction: float = 0.1  # held out of a folder that has no train/ and valid/ folders

    @property
    def window_shape(self) -> tuple[int, ...]:
        """Shape of one stored image: [channels, height, width]."""
        return (self.channels, self.height, self.width)

    @property
    def storage_dtype(self) -> str:
        """Images are stored as 8-bit grey levels."""
        return "uint8"

    def window_problem(self, windows: np.ndarray) -> str | None:
        """Why stored images [n, channels, height, width] do not fit this config, or None."""
        if windows.dtype != np.uint8:
            return f"images are {windows.dtype}, expected uint8 grey levels"
        return None


@dataclass(frozen=True)
class ImageModelConfig:
    """An image autoencoder (a deterministic code) or VAE (a Gaussian latent with a
    log-variance head). The encoder is `conv_channels` stride-2 3x3 convolutions (none: an MLP
    on the flattened pixels), then `hidden_sizes` dense layers; the decoder mirrors it."""

    architecture: str = "image_ae"  # image_ae | image_vae
    z_size: int = 32
    conv_channels: tuple[int, ...] = (32, 64)  # one stride-2 convolution per entry; () for MLP
    hidden_sizes: tuple[int, ...] = ()  # dense ReLU layers between the body and the latent
    conditional: bool = False  # encoder and decoder also read the one-hot label
    num_labels: int = 10  # labels 0 .. num_labels - 1 of a conditional model
    corruption: str = "none"  # what the encoder sees: none | gaussian | salt_pepper | downsample
    noise_level: float = 0.5  # gaussian: std of the added noise; salt_pepper: fraction of pixels
    downsample: int = 2  # corruption "downsample": the input is 1/downsample of the size
    likelihood: str = "bernoulli"  # bernoulli | gaussian (fixed pixel_sigma)
    pixel_sigma: float = 0.1  # std of the gaussian likelihood, in pixel units


DATA_CONFIG_CLASSES["image"] = ImageDataConfig
MODEL_CONFIG_CLASSES["image_ae"] = ImageModelConfig
MODEL_CONFIG_CLASSES["image_vae"] = ImageModelConfig

_MNIST = ImageDataConfig()
_MNIST_STEPS_PER_EPOCH = 60_000 // 128  # 468 batches of 128 training images


def _image_train(epochs: int, decay_rate: float) -> TrainConfig:
    """Adam at 1e-3 decaying to about a tenth by the last of `epochs` MNIST epochs; beta 1."""
    return TrainConfig(
        batch_size=128,
        free_bits=0.0,
        max_beta=1.0,  # the true ELBO: beta 1 from the first step, no free bits
        beta_rate=0.0,
        sampling_schedule="constant",
        sampling_rate=0.0,
        learning_rate=1e-3,
        min_learning_rate=1e-5,
        decay_rate=decay_rate,
        grad_clip=1e3,  # VAE losses are sums over 784 pixels: large gradients are normal
        grad_norm_clip_to_zero=1e7,
        num_steps=epochs * _MNIST_STEPS_PER_EPOCH,
    )


_IMAGE_TRAIN = _image_train(20, 0.9998)
_TINY_IMAGES = ImageDataConfig(height=16, width=16)
_TINY_IMAGE_TRAIN = dataclasses.replace(
    _IMAGE_TRAIN, batch_size=8, learning_rate=3e-3, decay_rate=1.0, num_steps=200
)
_TINY_CONV = {"conv_channels": (4, 8), "hidden_sizes": (16,), "z_size": 4}
_TINY_MLP = {"conv_channels": (), "hidden_sizes": (32,), "z_size": 2}

CONFIGS.update(
    {
        "mnist_conv_ae": Config(
            name="mnist_conv_ae",
            description="MNIST, convolutional autoencoder, 32-d code",
            data=_MNIST,
            model=ImageModelConfig(conv_channels=(32, 64), z_size=32),
            train=_IMAGE_TRAIN,
        ),
        "mnist_denoising_ae": Config(
            name="mnist_denoising_ae",
            description="MNIST, convolutional denoising autoencoder, Gaussian noise std 0.5",
            data=_MNIST,
            model=ImageModelConfig(
                conv_channels=(32, 64), z_size=64, corruption="gaussian", noise_level=0.5
            ),
            train=_image_train(10, 0.9996),
        ),
        "mnist_superres_ae": Config(
            name="mnist_superres_ae",
            description="MNIST, super-resolution autoencoder, 14x14 in, 28x28 out",
            data=_MNIST,
            model=ImageModelConfig(
                conv_channels=(32, 64), z_size=64, corruption="downsample", downsample=2
            ),
            train=_image_train(10, 0.9996),
        ),
        "mnist_vae2d": Config(
            name="mnist_vae2d",
            description="MNIST, MLP VAE with a 2-d latent (for latent plots and manifolds)",
            data=_MNIST,
            model=ImageModelConfig(
                architecture="image_vae", conv_channels=(), hidden_sizes=(512, 256), z_size=2
            ),
            train=_image_train(60, 0.99992),
        ),
        "mnist_conv_vae": Config(
            name="mnist_conv_vae",
            description="MNIST, convolutional VAE with a 20-d latent",
            data=_MNIST,
            model=ImageModelConfig(
                architecture="image_vae", conv_channels=(32, 64), hidden_sizes=(256,), z_size=20
            ),
            train=_image_train(25, 0.99982),
        ),
        "mnist_cvae": Config(
            name="mnist_cvae",
            description="MNIST, conditional MLP VAE (digit label in encoder and decoder)",
            data=_MNIST,
            model=ImageModelConfig(
                architecture="image_vae",
                conv_channels=(),
                hidden_sizes=(512, 256),
                z_size=8,
                conditional=True,
            ),
            train=_image_train(30, 0.99985),
        ),
        "image_ae_tiny": Config(
            name="image_ae_tiny",
            description="16x16 grey images, convolutional autoencoder, tiny, for tests",
            data=_TINY_IMAGES,
            model=ImageModelConfig(**_TINY_CONV),
            train=_TINY_IMAGE_TRAIN,
        ),
        "image_denoising_ae_tiny": Config(
            name="image_denoising_ae_tiny",
            description="16x16 grey images, denoising autoencoder, tiny, for tests",
            data=_TINY_IMAGES,
            model=ImageModelConfig(**_TINY_CONV, corruption="salt_pepper", noise_level=0.2),
            train=_TINY_IMAGE_TRAIN,
        ),
        "image_superres_ae_tiny": Config(
            name="image_superres_ae_tiny",
            description="16x16 grey images, super-resolution autoencoder (x2), tiny, for tests",
            data=_TINY_IMAGES,
            model=ImageModelConfig(**_TINY_CONV, corruption="downsample", downsample=2),
            train=_TINY_IMAGE_TRAIN,
        ),
        "image_vae_tiny": Config(
            name="image_vae_tiny",
            description="16x16 grey images, MLP VAE with a 2-d latent, tiny, for tests",
            data=_TINY_IMAGES,
            model=ImageModelConfig(architecture="image_vae", **_TINY_MLP),
            train=_TINY_IMAGE_TRAIN,
        ),
        "image_conv_vae_tiny": Config(
            name="image_conv_vae_tiny",
            description="16x16 grey images, convolutional VAE, tiny, for tests",
            data=_TINY_IMAGES,
            model=ImageModelConfig(architecture="image_vae", **_TINY_CONV),
            train=_TINY_IMAGE_TRAIN,
        ),
        "image_cvae_tiny": Config(
            name="image_cvae_tiny",
            description="16x16 grey images, conditional MLP VAE over 4 labels, tiny, for tests",
            data=_TINY_IMAGES,
            model=ImageModelConfig(
                architecture="image_vae", **_TINY_MLP, conditional=True, num_labels=4
            ),
            train=_TINY_IMAGE_TRAIN,
        ),
    }
)

# End of the image configs.
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Piano-roll configs: polyphonic rolls (one merged roll, or one group of rows per instrument
# family) with convolutional and recurrent VAEs. See musicvae_py.converters.pianoroll.

ALL_FAMILIES = ("piano", "keys", "guitar", "bass", "strings", "winds", "lead", "synth")
DRUM_ROWS = 9  # the drum classes of musicvae_py.converters.drums


@dataclass(frozen=True)
class RollDataConfig:
    """How MIDI becomes roll windows uint8 [steps, rows, planes]: an onset and a sustain plane,
    and a velocity plane when `velocity` is set."""

    kind: str = "pianoroll"  # pianoroll: all kept tracks merged | multitrack: a group per family
    window_steps: int = 32  # 2 bars of 4/4 at 16 steps per bar (16, 32 or 64 for 1, 2, 4 bars)
    hop_steps: int = 16  # windows start every 4/4 bar
    min_pitch: int = 21  # A0, lowest pitch kept
    max_pitch: int = 108  # C8, highest pitch kept
    velocity: bool = False  # a third plane with the MIDI velocity (1-127) of each onset
    transpose: int = 5  # training-time transposition, +- semitones, kept inside the pitch range
    families: tuple[str, ...] = ()  # multitrack: the instrument families kept, in row order
    drums: bool = False  # multitrack: 9 drum-class rows after the families
    track_families: tuple[str, ...] = ()  # multitrack: "track name=family" overrides

    def __post_init__(self) -> None:
        known = ", ".join(ALL_FAMILIES)
        for name in self.families:
            if name not in ALL_FAMILIES:
                raise ConfigError(f"unknown instrument family {name!r} (known: {known})")
        for entry in self.track_families:
            track, _, family = entry.partition("=")
            if not track.strip() or family not in ALL_FAMILIES:
                raise ConfigError(
                    f"track family override {entry!r} must read TRACK=FAMILY with FAMILY one "
                    f"of {known}"
                )
        if self.kind == "multitrack" and not (self.families or self.drums):
            raise ConfigError("a multitrack config needs at least one family or the drums")

    @property
    def planes(self) -> int:
        """Onset and sustain, and velocity when asked for."""
        return 3 if self.velocity else 2

    @property
    def group_names(self) -> tuple[str, ...]:
        """The channel groups of a roll, in row order."""
        if self.kind == "pianoroll":
            return ("piano",)
        return self.families + (("drums",) if self.drums else ())

    @property
    def group_rows(self) -> tuple[int, ...]:
        """Rows of each channel group: one per pitch, or one per drum class."""
        pitches = self.max_pitch - self.min_pitch + 1
        return tuple(DRUM_ROWS if name == "drums" else pitches for name in self.group_names)

    @property
    def rows(self) -> int:
        return sum(self.group_rows)

    @property
    def window_shape(self) -> tuple[int, ...]:
        """Shape of one stored window: [steps, rows, planes]."""
        return (self.window_steps, self.rows, self.planes)

    @property
    def storage_dtype(self) -> str:
        """Planes are 0/1 flags and velocities up to 127."""
        return "uint8"

    def window_problem(self, windows: np.ndarray) -> str | None:
        """Why stored windows [n, steps, rows, planes] do not fit this config, or None."""
        if not len(windows):
            return None
        if windows[..., :2].max() > 1:
            return "onset and sustain planes hold values other than 0 and 1"
        if self.velocity and windows[..., 2].max() > 127:
            return "velocity plane holds values above 127"
        return None


@dataclass(frozen=True)
class RollModelConfig:
    """A convolutional (`roll_conv`) or recurrent (`roll_rnn`) VAE over roll windows.

    roll_conv: one stride-2 convolution per `conv_channels` entry, over pitch x time
    (`conv_dims` 2, groups and planes as channels) or over time with every row and plane a
    channel (`conv_dims` 1); a dense layer of `hidden_size`; the decoder mirrors it with
    transposed convolutions. With `local_latent`, z keeps the positions of the smallest feature
    map instead (z_size / positions dimensions at each, no dense layer), so each part of z
    describes its own stretch of the window. With `context_steps` > 0, each frame's sustain
    logits also read the frames drawn before it through a causal convolution, so sampling runs
    frame by frame and a drawn note's holding depends on what was drawn. With `prior`
    "fitted", samples draw z from a full-covariance Gaussian of the latents seen in training
    (running moments kept in the weights) instead of N(0, I); training and the ELBO still use
    N(0, I). With `duration_features` > 0 the decoder has no sustain cells: each cell where a
    note starts gives that many features to a small network with a categorical over the note's
    length, so a note is drawn whole instead of held step by step; in training those features
    come from z plus N(0, `duration_noise`^2 I) noise, so the lengths stay right for latents
    away from the training ones. roll_rnn: a bidirectional LSTM over frames (`encoder_sizes`
    per direction) and an autoregressive LSTM over frames (`decoder_sizes`).
    """

    architecture: str = "roll_conv"  # roll_conv | roll_rnn
    z_size: int = 512
    conv_dims: int = 2  # 2: over pitch x time; 1: over time, pitch rows as channels
    conv_channels: tuple[int, ...] = (32, 64, 128, 128)
    kernel_size: int = 3  # odd
    hidden_size: int = 512
    local_latent: bool = False  # roll_conv: z per position of the smallest feature map
    context_steps: int = 0  # roll_conv: frames before each frame its sustain reads (0: none)
    duration_features: int = 0  # roll_conv: > 0 draws each note's length once (see above)
    duration_noise: float = 0.0  # std of the noise on z for the durations learnt in training
    prior: str = "standard"  # what samples draw z from: standard N(0, I) | fitted
    encoder_sizes: tuple[int, ...] = (256,)
    decoder_sizes: tuple[int, ...] = (512,)


DATA_CONFIG_CLASSES["pianoroll"] = RollDataConfig
DATA_CONFIG_CLASSES["multitrack"] = RollDataConfig
MODEL_CONFIG_CLASSES["roll_conv"] = RollModelConfig
MODEL_CONFIG_CLASSES["roll_rnn"] = RollModelConfig

_PIANOROLL_2BAR = RollDataConfig()
_MULTITRACK = RollDataConfig(
    kind="multitrack",
    window_steps=16,
    min_pitch=24,  # C1 to B6: six octaves, shared by every family
    max_pitch=95,
    transpose=3,
    families=ALL_FAMILIES,
    drums=True,
    track_families=("melody=lead", "vocal=lead", "bridge=strings"),  # POP909's named tracks
)
# Reconstruction first: 2,048 free bits leave room for the ~25 notes of a 2-bar piano window
_ROLL_TRAIN = TrainConfig(
    batch_size=64,
    free_bits=2048.0,
    max_beta=0.2,
    beta_rate=0.0,
    sampling_schedule="constant",
    sampling_rate=0.0,
    learning_rate=1e-3,
    decay_rate=0.99985,
    num_steps=15_000,
)
# Over time, z per beat, note lengths learnt with noise on z, fitted prior: the form that
# reconstructs and samples best on POP909 (README, "Where the roll models stand")
_ROLL_PER_BEAT = RollModelConfig(
    conv_dims=1,
    conv_channels=(256, 256),
    local_latent=True,
    duration_features=8,
    duration_noise=2.0,
    prior="fitted",
)
_TINY_ROLL = RollDataConfig(min_pitch=48, max_pitch=71, transpose=2)
_TINY_ROLL_TRAIN = dataclasses.replace(
    _TINY_TRAIN, free_bits=0.0, max_beta=0.02, learning_rate=3e-3, num_steps=200
)
_TINY_CONV_ROLL = {"conv_channels": (4, 8), "hidden_size": 16, "z_size": 8}
_TINY_RNN_ROLL = {"encoder_sizes": (16,), "decoder_sizes": (16,), "z_size": 8}

CONFIGS.update(
    {
        "pianoroll_2bar_conv": Config(
            name="pianoroll_2bar_conv",
            description="2-bar piano rolls, convolutional VAE over time, pitch rows as channels, "
            "z kept per beat (8 x 64)",
            data=_PIANOROLL_2BAR,
            model=_ROLL_PER_BEAT,
            # A quarter of the free bits keeps the codes nearer the prior samples are drawn
            # from; past 5,000 steps the decoder sharpens around the training codes and prior
            # samples thin out (reconstruction still improves).
            train=dataclasses.replace(_ROLL_TRAIN, free_bits=512.0, num_steps=5_000),
        ),
        "pianoroll_2bar_conv_global": Config(
            name="pianoroll_2bar_conv_global",
            description="2-bar piano rolls, convolutional VAE over time, pitch rows as channels, "
            "one z for the window",
            data=_PIANOROLL_2BAR,
            model=RollModelConfig(conv_dims=1, conv_channels=(256, 256, 256)),
            train=_ROLL_TRAIN,
        ),
        "pianoroll_2bar_conv2d": Config(
            name="pianoroll_2bar_conv2d",
            description="2-bar piano rolls, convolutional VAE over pitch x time",
            data=_PIANOROLL_2BAR,
            model=RollModelConfig(),
            train=_ROLL_TRAIN,
        ),
        "pianoroll_2bar_rnn": Config(
            name="pianoroll_2bar_rnn",
            description="2-bar piano rolls, recurrent VAE over frames",
            data=_PIANOROLL_2BAR,
            model=RollModelConfig(architecture="roll_rnn"),
            train=_ROLL_TRAIN,
        ),
        "multitrack_1bar_conv": Config(
            name="multitrack_1bar_conv",
            description="1-bar multitrack rolls, 8 instrument families and drums, conv VAE over "
            "time, z kept per beat (4 x 64)",
            data=_MULTITRACK,
            model=dataclasses.replace(_ROLL_PER_BEAT, z_size=4 * 64),
            train=dataclasses.replace(_ROLL_TRAIN, free_bits=512.0, num_steps=3_000),
        ),
        "multitrack_4bar_conv": Config(
            name="multitrack_4bar_conv",
            description="4-bar multitrack rolls, 8 instrument families and drums, conv VAE over "
            "time, z kept per beat (16 x 64)",
            data=dataclasses.replace(_MULTITRACK, window_steps=64),
            model=dataclasses.replace(_ROLL_PER_BEAT, z_size=16 * 64),
            train=dataclasses.replace(_ROLL_TRAIN, free_bits=2048.0, num_steps=3_000),
        ),
        "pianoroll_2bar_conv_tiny": Config(
            name="pianoroll_2bar_conv_tiny",
            description="2-bar piano rolls over two octaves, convolutional VAE, tiny, for tests",
            data=_TINY_ROLL,
            model=RollModelConfig(**_TINY_CONV_ROLL),
            train=_TINY_ROLL_TRAIN,
        ),
        "pianoroll_2bar_conv1d_tiny": Config(
            name="pianoroll_2bar_conv1d_tiny",
            description="2-bar piano rolls over two octaves, conv over time with z per beat, "
            "note durations and fitted prior, tiny, for tests",
            data=_TINY_ROLL,
            model=RollModelConfig(
                conv_dims=1,
                conv_channels=(16, 16),
                hidden_size=16,
                z_size=16,
                local_latent=True,
                duration_features=4,
                duration_noise=1.0,
                prior="fitted",
            ),
            train=_TINY_ROLL_TRAIN,
        ),
        "pianoroll_2bar_rnn_tiny": Config(
            name="pianoroll_2bar_rnn_tiny",
            description="2-bar piano rolls over two octaves, recurrent VAE, tiny, for tests",
            data=_TINY_ROLL,
            model=RollModelConfig(architecture="roll_rnn", **_TINY_RNN_ROLL),
            train=_TINY_ROLL_TRAIN,
        ),
        "multitrack_1bar_conv_tiny": Config(
            name="multitrack_1bar_conv_tiny",
            description="1-bar multitrack rolls (piano, bass, lead, drums), conv VAE, tiny",
            data=dataclasses.replace(
                _MULTITRACK, min_pitch=36, max_pitch=83, families=("piano", "bass", "lead")
            ),
            model=RollModelConfig(**_TINY_CONV_ROLL),
            train=_TINY_ROLL_TRAIN,
        ),
    }
)

# End of the piano-roll configs.
# ---------------------------------------------------------------------------------------------


def get_config(name: str) -> Config:
    """Look up a named config; the error lists the known names."""
    try:
        return CONFIGS[name]
    except KeyError:
        known = ", ".join(sorted(CONFIGS))
        raise ConfigError(f"unknown config {name!r} (known: {known})") from None
