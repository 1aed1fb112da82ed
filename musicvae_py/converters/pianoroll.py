"""Piano rolls: notes on the 16th-note grid as onset, sustain and optional velocity planes.

A roll window is uint8 [steps, rows, planes]. Plane 0 (ONSET) is 1 where a note starts, plane 1
(SUSTAIN) is 1 wherever a note sounds, its onset step included, and plane 2 (VELOCITY, only when
the config asks for it) holds the MIDI velocity of each onset. Two notes of one pitch played
back to back stay two notes: the second has its own onset.

The rows depend on the data kind:

    pianoroll   one group: row r is MIDI pitch min_pitch + r; every non-drum track is merged
                into it (or only the tracks `musicvae prepare --track NAME` names).
    multitrack  one group of pitch rows per instrument family of the config, in its order,
                then (with `drums`) 9 rows for the drum classes of `converters.drums`.

Back from a roll: an onset starts a note and sustain holds it; the note ends at the first step
without sustain, or at the next onset of its pitch. Sustain at the first step without an onset
is a note held from before the window and starts there; sustain elsewhere without a sounding
note before it is ignored. Drum rows give one-step hits at their onsets.
"""

from dataclasses import dataclass

import numpy as np
import torch

from musicvae_py.converters.drums import CLASS_TO_PITCH, PITCH_TO_CLASS
from musicvae_py.converters.midi_io import NoteList, Score, Track
from musicvae_py.converters.windows import Extraction, cut_windows
from musicvae_py.errors import ExtractionError

ONSET, SUSTAIN, VELOCITY = 0, 1, 2
BAR_STEPS = 16


@dataclass(frozen=True)
class Family:
    """An instrument family: the General MIDI programs it covers and the one written out."""

    name: str
    programs: tuple[int, int]  # inclusive program range
    program: int  # representative program of written tracks


FAMILIES: tuple[Family, ...] = (
    Family("piano", (0, 7), 0),
    Family("keys", (8, 23), 16),  # chromatic percussion and organs
    Family("guitar", (24, 31), 25),
    Family("bass", (32, 39), 33),
    Family("strings", (40, 55), 48),  # solo strings and ensembles
    Family("winds", (56, 71), 61),  # brass and reeds
    Family("lead", (72, 87), 73),  # pipes and synth leads
    Family("synth", (88, 127), 89),  # pads, effects, ethnic, percussive, sound effects
)
FAMILY_BY_NAME = {f.name: f for f in FAMILIES}
DRUMS = "drums"


def family_of(track: Track, cfg) -> str:
    """The family a track's notes go to: "drums" for the drum channel, the config's override
    for its name (`track_families`, "name=family", names compared without case), else the
    family whose program range holds its program."""
    if track.is_drum:
        return DRUMS
    name = track.name.strip().lower()
    for entry in cfg.track_families:
        override, _, family = entry.partition("=")
        if override.strip().lower() == name:
            return family
    return next(f.name for f in FAMILIES if f.programs[0] <= track.program <= f.programs[1])


def group_offsets(cfg) -> dict[str, int]:
    """The first row of each channel group of a config's rolls."""
    offsets, row = {}, 0
    for name, rows in zip(cfg.group_names, cfg.group_rows, strict=True):
        offsets[name] = row
        row += rows
    return offsets


def _fill(roll: np.ndarray, track: Track, rows: np.ndarray, keep: np.ndarray, origin: int) -> None:
    """Write the kept notes of a track into a whole-piece roll at the given rows."""
    has_velocity = roll.shape[-1] > VELOCITY
    start, end = track.start[keep] - origin, track.end[keep] - origin
    velocity = track.velocity[keep]
    for row, on, off, vel in zip(
        rows.tolist(), start.tolist(), end.tolist(), velocity.tolist(), strict=True
    ):
        roll[on:off, row, SUSTAIN] = 1
        roll[on, row, ONSET] = 1
        if has_velocity:
            roll[on, row, VELOCITY] = max(int(roll[on, row, VELOCITY]), min(max(vel, 1), 127))


def score_roll(score: Score, cfg) -> tuple[int, np.ndarray]:
    """The whole piece as one roll uint8 [steps, rows, planes] from the bar line before its
    first kept note, padded to whole 16-step bars; and that first step in the file.

    Notes outside the pitch range, drum notes of a piano roll, and notes of a family the config
    does not keep are dropped. Raises ExtractionError when nothing is left.
    """
    offsets = group_offsets(cfg)
    parts: list[tuple[str, Track, np.ndarray, np.ndarray]] = []  # group, track, kept, rows
    for track in score.tracks:
        if cfg.kind == "pianoroll":
            group = None if track.is_drum else cfg.group_names[0]
        else:
            group = family_of(track, cfg)
        if group not in offsets:
            continue
        if group == DRUMS:
            classes = np.array([PITCH_TO_CLASS.get(p, -1) for p in track.pitch.tolist()])
            keep = classes >= 0
            rows = offsets[DRUMS] + classes[keep]
        else:
            keep = (track.pitch >= cfg.min_pitch) & (track.pitch <= cfg.max_pitch)
            rows = offsets[group] + track.pitch[keep].astype(np.int64) - cfg.min_pitch
        if keep.any():
            parts.append((group, track, keep, rows))
    if not parts:
        kept = "non-drum track" if cfg.kind == "pianoroll" else "kept family or drum track"
        raise ExtractionError(
            score.path,
            "no roll notes",
            f"no note of a {kept} in pitches {cfg.min_pitch}-{cfg.max_pitch}",
        )

    first = min(int(track.start[keep].min()) for _, track, keep, _ in parts)
    last = max(int(track.end[keep].max()) for _, track, keep, _ in parts)
    origin = score.bar_start(first)
    steps = -(-(last - origin) // BAR_STEPS) * BAR_STEPS
    roll = np.zeros((steps, cfg.rows, cfg.planes), dtype=np.uint8)
    for group, track, keep, rows in parts:
        if group == DRUMS:
            hits = track.start[keep] - origin
            roll[hits, rows, ONSET] = 1
            roll[hits, rows, SUSTAIN] = 1  # a drum hit sounds for its step only
            if cfg.velocity:
                roll[hits, rows, VELOCITY] = np.clip(track.velocity[keep], 1, 127)
        else:
            _fill(roll, track, rows, keep, origin)
    return origin, roll


def extract_roll_windows(score: Score, cfg) -> Extraction:
    """All windows of `score` with a hop of `cfg.hop_steps`: empty ones dropped and counted, a
    window equal to an earlier one of the same file dropped."""
    origin, roll = score_roll(score, cfg)
    return cut_windows([(origin, roll)], score, cfg, is_empty=_silent)


def _silent(window: np.ndarray) -> bool:
    """Whether no note starts or sounds in a roll window [steps, rows, planes]."""
    return not window[..., :VELOCITY].any()


def roll_to_notes(roll: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Decode a roll int [steps, rows, planes] into (row, start step, end step, velocity)
    notes; velocity is 0 when the roll has no velocity plane."""
    roll = np.asarray(roll)
    steps = len(roll)
    onset = roll[..., ONSET] > 0
    sustain = roll[..., SUSTAIN] > 0
    velocity = roll[..., VELOCITY] if roll.shape[-1] > VELOCITY else np.zeros_like(roll[..., 0])
    notes = []
    for row in np.flatnonzero(onset.any(axis=0) | sustain[0]).tolist():
        on, held = onset[:, row], sustain[:, row]
        begun = 0 if held[0] and not on[0] else -1
        for step in range(steps):
            if on[step]:
                if begun >= 0:
                    notes.append((row, begun, step, int(velocity[begun, row])))
                begun = step
            elif begun >= 0 and not held[step]:
                notes.append((row, begun, step, int(velocity[begun, row])))
                begun = -1
        if begun >= 0:
            notes.append((row, begun, steps, int(velocity[begun, row])))
    return sorted(notes, key=lambda n: (n[1], n[0]))


def roll_notelists(window: np.ndarray, cfg, program: int = 0, velocity: int = 80) -> list[NoteList]:
    """Output tracks of a roll window int [steps, rows, planes], or of several joined in time.

    A piano roll gives one track at `program`; a multitrack roll one track per family that has
    notes, at the family's representative program, and a drum-channel track. Tracks carry one
    velocity each (a `NoteList` has one): the mean of the velocity plane at its onsets when the
    roll has one, else `velocity`. A roll with no note gives one empty track.
    """
    window = np.asarray(window).reshape(-1, cfg.rows, cfg.planes)
    notes = roll_to_notes(window)
    tracks = []
    for (name, first), size in zip(group_offsets(cfg).items(), cfg.group_rows, strict=True):
        own = [n for n in notes if first <= n[0] < first + size]
        if not own:
            continue
        level = velocity
        if cfg.velocity:
            level = int(round(float(np.mean([max(v, 1) for *_, v in own]))))
        if name == DRUMS:
            hits = [(CLASS_TO_PITCH[row - first], on, on + 1) for row, on, _, _ in own]
            tracks.append(NoteList(hits, 0, True, level, DRUMS))
            continue
        pitched = [(row - first + cfg.min_pitch, on, off) for row, on, off, _ in own]
        family_program = program if cfg.kind == "pianoroll" else FAMILY_BY_NAME[name].program
        tracks.append(NoteList(pitched, family_program, False, level, name))
    if not tracks:
        name = cfg.group_names[0]
        family_program = program if cfg.kind == "pianoroll" else FAMILY_BY_NAME[name].program
        tracks.append(NoteList([], family_program, name == DRUMS, velocity, name))
    return tracks


def transpose_rolls(
    rolls: torch.Tensor, cfg, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shift each roll's pitched rows by a random number of semitones that keeps all its notes
    in the pitch range; drum rows stay. rolls: int [batch, steps, rows, planes].

    Each window gets its own shift, uniform over the shifts in [-cfg.transpose, cfg.transpose]
    that keep its lowest and highest notes (over all pitched groups) inside the range.
    """
    if cfg.transpose <= 0:
        return rolls
    pitches = cfg.max_pitch - cfg.min_pitch + 1
    groups = len(cfg.group_names) - (1 if DRUMS in cfg.group_names else 0)
    pitched = rolls[:, :, : groups * pitches]
    batch, steps = pitched.shape[:2]
    grid = pitched.reshape(batch, steps, groups, pitches, -1)
    active = grid.amax(dim=(1, 2, 4)) > 0  # [batch, pitches]
    index = torch.arange(pitches)
    low = torch.where(active, index, pitches).amin(dim=1)
    high = torch.where(active, index, -1).amax(dim=1)
    down = torch.clamp(low, max=cfg.transpose)
    up = torch.clamp(pitches - 1 - high, max=cfg.transpose)
    empty = ~active.any(dim=1)
    down, up = torch.where(empty, 0, down), torch.where(empty, 0, up)
    u = torch.rand(batch, generator=generator)
    shifts = ((u * (down + up + 1)).floor().long() - down).tolist()
    moved = torch.stack([torch.roll(g, s, dims=2) for g, s in zip(grid, shifts, strict=True)])
    out = rolls.clone()
    out[:, :, : groups * pitches] = moved.reshape(pitched.shape)
    return out
