"""Piano-roll pictures of note tracks, drawn with Pillow."""

from pathlib import Path

from musicvae_py.converters.midi_io import NoteList
from musicvae_py.fileio import write_with

TRACK_COLOURS = [(66, 133, 244), (219, 68, 55), (15, 157, 88), (244, 180, 0), (171, 71, 188)]


def piano_roll_png(
    tracks: list[NoteList],
    path: str | Path,
    steps_per_bar: int = 16,
    step_px: int = 8,
    pitch_px: int = 6,
    overwrite: bool = True,
) -> None:
    """Draw tracks as a piano roll: time left to right, pitch bottom to top, bar lines grey."""
    from PIL import Image, ImageDraw

    notes = [n for t in tracks for n in t.notes]
    low = min((p for p, _, _ in notes), default=60) - 2
    high = max((p for p, _, _ in notes), default=72) + 2
    steps = max((e for _, _, e in notes), default=steps_per_bar)
    steps = -(-steps // steps_per_bar) * steps_per_bar
    width, height = steps * step_px + 1, (high - low + 1) * pitch_px + 1

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for pitch in range(low, high + 1):
        if pitch % 12 in (1, 3, 6, 8, 10):  # black keys get a shaded row
            y = (high - pitch) * pitch_px
            draw.rectangle([0, y, width, y + pitch_px - 1], fill=(240, 240, 240))
    for step in range(0, steps + 1, 4):
        shade = (150, 150, 150) if step % steps_per_bar == 0 else (220, 220, 220)
        draw.line([step * step_px, 0, step * step_px, height], fill=shade)
    for index, track in enumerate(tracks):
        colour = TRACK_COLOURS[index % len(TRACK_COLOURS)]
        for pitch, start, end in track.notes:
            y = (high - pitch) * pitch_px
            draw.rectangle(
                [start * step_px + 1, y + 1, end * step_px - 1, y + pitch_px - 1],
                fill=colour,
                outline=(0, 0, 0),
            )
    write_with(path, lambda tmp: image.save(tmp, format="PNG"), overwrite)
