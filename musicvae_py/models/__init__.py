"""Models: the shared VAE core, recurrent encoders and decoders, and the music VAE."""
