"""musicvae_py: variational autoencoders for music and images, in PyTorch.

The public API: `TrainedModel` (load a trained music model; sample, encode, decode, interpolate,
reconstruct), `get_config` and `CONFIGS` (named configs), and `MusicVAEError` (every error
raised on bad input).
"""

from musicvae_py.configs import CONFIGS, Config, get_config
from musicvae_py.errors import MusicVAEError

__version__ = "0.1.0"
__all__ = ["CONFIGS", "Config", "TrainedModel", "MusicVAEError", "get_config", "__version__"]


def __getattr__(name: str):
    # Importing torch takes a second: only the callers that need a model pay for it.
    if name == "TrainedModel":
        from musicvae_py.inference import TrainedModel

        return TrainedModel
    raise AttributeError(f"module 'musicvae_py' has no attribute {name!r}")
