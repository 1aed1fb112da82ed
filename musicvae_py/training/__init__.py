"""Training, evaluation and checkpoints, shared by every model."""
