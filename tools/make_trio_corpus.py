"""Build a trio corpus (melody, bass, drums) from POP909 songs and Groove MIDI drum beats.

    python tools/make_trio_corpus.py --pop909 ../shared/datasets/midi/pop909 \\
        --groove ../shared/datasets/midi/groove --out trios [--limit N]

Public corpora with all three parts are rare, so each written file combines:
- melody: the song's MELODY track, as it is (program 0);
- bass: the lowest note sounding at each onset of the song's PIANO track, each note cut at
  the next onset (program 33);
- drums: one 4/4 beat of Groove's training split, chosen by the song's index, quantised to
  16th notes and repeated bar by bar from the song's first bar to its end.

Everything is on the 16th-note grid (4 steps per quarter note) and written at 120 qpm; bars
are 16 steps counted from the start of the song. The result is a training set for
`musicvae prepare --config trio_16bar_hierdec`; it is not a corpus of real trio performances.
"""

import argparse
import csv
from pathlib import Path

import numpy as np

from musicvae_py.converters.midi_io import NoteList, Score, read_midi, write_midi
from musicvae_py.errors import MusicVAEError

BAR = 16


def named_track(score: Score, name: str):
    for track in score.tracks:
        if track.name.strip().upper() == name:
            return track
    return None


def low_line(track) -> list[tuple[int, int, int]]:
    """The lowest pitch at each onset of a polyphonic track, held until the next onset."""
    onsets = np.unique(track.start)
    notes = []
    for i, onset in enumerate(onsets):
        here = track.start == onset
        pitch = int(track.pitch[here].min())
        end = int(track.end[here][track.pitch[here] == pitch].max())
        if i + 1 < len(onsets):
            end = min(end, int(onsets[i + 1]))
        notes.append((pitch, int(onset), end))
    return notes


def drum_loop(score: Score, steps: int) -> list[tuple[int, int, int]]:
    """The beat's hits, repeated by whole bars to fill `steps`."""
    hits = [
        (int(p), int(s))
        for t in score.tracks
        if t.is_drum
        for p, s in zip(t.pitch.tolist(), t.start.tolist(), strict=True)
    ]
    if not hits:
        return []
    length = -(-(max(s for _, s in hits) + 1) // BAR) * BAR
    return [
        (pitch, start + offset, start + offset + 1)
        for offset in range(0, steps, length)
        for pitch, start in hits
        if start + offset < steps
    ]


def groove_beats(groove: Path) -> list[Path]:
    with open(groove / "info.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return sorted(
        groove / r["midi_filename"]
        for r in rows
        if r["split"] == "train" and r["beat_type"] == "beat" and r["time_signature"] == "4-4"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pop909", type=Path, required=True)
    parser.add_argument("--groove", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=None, help="At most this many songs.")
    args = parser.parse_args()

    beats = groove_beats(args.groove)
    songs = sorted(args.pop909.rglob("*.mid"))[: args.limit]
    written = skipped = 0
    for index, path in enumerate(songs):
        try:
            song = read_midi(path)
            melody, piano = named_track(song, "MELODY"), named_track(song, "PIANO")
            if melody is None or piano is None or not len(melody) or not len(piano):
                skipped += 1
                continue
            steps = -(-int(max(melody.end.max(), piano.end.max())) // BAR) * BAR
            beat = read_midi(beats[index % len(beats)])
            tracks = [
                NoteList(
                    list(
                        zip(
                            melody.pitch.tolist(),
                            melody.start.tolist(),
                            melody.end.tolist(),
                            strict=True,
                        )
                    ),
                    0,
                    False,
                    80,
                    "melody",
                ),
                NoteList(low_line(piano), 33, False, 80, "bass"),
                NoteList(drum_loop(beat, steps), 0, True, 80, "drums"),
            ]
            write_midi(args.out / f"{path.stem}-trio.mid", tracks)
            written += 1
        except MusicVAEError as err:
            print(f"skipped {err}")
            skipped += 1
    print(f"wrote {written} trio files to {args.out}, skipped {skipped}")


if __name__ == "__main__":
    main()
