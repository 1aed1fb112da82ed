"""The `musicvae` command line (installed as the package musicvae_py.cli)."""
