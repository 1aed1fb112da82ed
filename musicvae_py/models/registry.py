"""Which model class serves which config: chosen by the model architecture."""

from torch import nn

from musicvae_py.configs import Config
from musicvae_py.errors import ConfigError


def build_model(config: Config) -> nn.Module:
    """A freshly initialised model for `config`."""
    architecture = config.model.architecture
    if architecture == "rnn" and config.data.kind in ("melody", "drums", "trio"):
        from musicvae_py.models.music_vae import MusicVAE

        return MusicVAE(config)
    raise ConfigError(
        f"config {config.name}: no {architecture!r} model for data kind {config.data.kind!r}"
    )
