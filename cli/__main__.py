"""`python -m musicvae_py.cli`: the `musicvae` command line."""

from musicvae_py.cli.main import main

main()
