"""Error types raised by the toolkit.

Every error carries a one-line message that names the input and the problem, so the command line
can print it as is and exit with a non-zero status.
"""


class MusicVAEError(Exception):
    """Base class for every error the toolkit raises on bad input or bad state."""


class FileProblem(MusicVAEError):
    """An input file the toolkit cannot use, with a short reason (the names `prepare` counts
    skipped files under) and an optional detail."""

    def __init__(self, path: str, reason: str, detail: str = "") -> None:
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        text = f"{self.path}: {reason}"
        if detail:
            text += f" ({detail})"
        super().__init__(text)


class MidiReadError(FileProblem):
    """A MIDI file could not be read: missing, unreadable, malformed or too large."""


class ExtractionError(FileProblem):
    """A MIDI file was read but yields nothing the data kind can use (no melody, no drums)."""


class NoExamplesError(MusicVAEError):
    """An input yields no window the model can read."""


class MultipleExamplesError(MusicVAEError):
    """An input yields several windows and the caller must choose one."""

    def __init__(self, message: str, count: int) -> None:
        self.count = count
        super().__init__(message)


class CheckpointError(MusicVAEError):
    """A checkpoint is missing, truncated, or does not match its config."""


class DatasetError(MusicVAEError):
    """A prepared dataset is missing or malformed."""


class ConfigError(MusicVAEError):
    """An unknown config name or an invalid config value."""


class OutputExistsError(MusicVAEError):
    """An output file exists and overwriting was not asked for."""
