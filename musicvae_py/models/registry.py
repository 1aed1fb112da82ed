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
    roll_data = config.data.kind in ("pianoroll", "multitrack")
    if architecture in ("roll_conv", "roll_rnn") and roll_data:
        from musicvae_py.models.roll_vae import build_roll_model

        return build_roll_model(config)
    if architecture in ("image_ae", "image_vae") and config.data.kind == "image":
        from musicvae_py.models.image_models import build_image_model

        return build_image_model(config)
    raise ConfigError(
        f"config {config.name}: no {architecture!r} model for data kind {config.data.kind!r}"
    )
