"""Pictures drawn with Pillow: piano rolls of note tracks, image grids and latent scatters."""

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


# ---------------------------------------------------------------------------------------------
# Image grids and latent scatter plots (image models).

LABEL_COLOURS = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]


def _to_pil(image, scale: int):
    """One image float [c, h, w] in [0, 1] (c is 1 or 3) -> a Pillow image, scaled up."""
    import numpy as np
    from PIL import Image

    pixels = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    picture = Image.fromarray(pixels[0] if len(pixels) == 1 else pixels.transpose(1, 2, 0))
    picture = picture.convert("RGB")
    if scale != 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    return picture


def image_grid_png(
    images,
    path: str | Path,
    columns: int = 8,
    scale: int = 2,
    pad: int = 2,
    column_titles: list[str] | None = None,
    overwrite: bool = True,
) -> tuple[int, int]:
    """Draw images float [n, channels, height, width] in [0, 1] as a grid, row by row, with
    optional titles over the columns; returns the picture's (width, height) in pixels."""
    from PIL import Image, ImageDraw, ImageFont

    count, _, height, width = images.shape
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    cell_w, cell_h = width * scale + pad, height * scale + pad
    font = ImageFont.load_default()
    top = 16 if column_titles else 0
    size = (columns * cell_w + pad, rows * cell_h + pad + top)
    grid = Image.new("RGB", size, (64, 64, 64))
    draw = ImageDraw.Draw(grid)
    for i, title in enumerate(column_titles or []):
        draw.text((pad + i * cell_w, 2), title, fill=(255, 255, 255), font=font)
    for i in range(count):
        row, column = divmod(i, columns)
        grid.paste(_to_pil(images[i], scale), (pad + column * cell_w, top + pad + row * cell_h))
    write_with(path, lambda tmp: grid.save(tmp, format="PNG"), overwrite)
    return grid.size


def latent_scatter_png(
    panels: list[tuple[str, object, object]],
    path: str | Path,
    label_names: list[str],
    panel_px: int = 480,
    overwrite: bool = True,
) -> tuple[int, int]:
    """Scatter plots side by side, one per (title, points float [n, 2], labels int [n]),
    points coloured by label, with a shared legend; returns the picture's (width, height)."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    margin, title_h, legend_w = 12, 20, 90
    width = len(panels) * (panel_px + margin) + margin + legend_w
    height = panel_px + title_h + 2 * margin
    picture = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(picture)
    for p, (title, points, labels) in enumerate(panels):
        points, labels = np.asarray(points, dtype=np.float64), np.asarray(labels)
        left, top = margin + p * (panel_px + margin), margin + title_h
        draw.text((left, margin), title, fill=(0, 0, 0), font=font)
        draw.rectangle([left, top, left + panel_px, top + panel_px], outline=(120, 120, 120))
        low, high = points.min(axis=0), points.max(axis=0)
        span = np.where(high > low, high - low, 1.0)
        inner = panel_px - 8
        xy = (points - low) / span * inner + 4
        for (x, y), label in zip(xy, labels, strict=True):
            colour = LABEL_COLOURS[int(label) % len(LABEL_COLOURS)]
            cx, cy = left + x, top + panel_px - y  # y grows upwards
            draw.ellipse([cx - 1.5, cy - 1.5, cx + 1.5, cy + 1.5], fill=colour)
    legend_left = width - legend_w
    for i, name in enumerate(label_names):
        y = margin + title_h + 16 * i
        colour = LABEL_COLOURS[i % len(LABEL_COLOURS)]
        draw.rectangle([legend_left, y + 3, legend_left + 9, y + 12], fill=colour)
        draw.text((legend_left + 14, y), name or "(none)", fill=(0, 0, 0), font=font)
    write_with(path, lambda tmp: picture.save(tmp, format="PNG"), overwrite)
    return picture.size
