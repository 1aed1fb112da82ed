"""Prepared datasets: turning a corpus into windows on disk, and reading them back."""
