"""Converters between MIDI files and the tensors the models read."""
