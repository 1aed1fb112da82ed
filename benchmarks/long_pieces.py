"""Pieces longer than a window: silences at the seams, tempo events, and time per piece.

    python benchmarks/long_pieces.py [--model mel_2bar] [--bars 64] [--pieces 20]
        [--temperature 0.5]

Samples `--pieces` pieces of `--bars` bars through `musicvae sample --bars` (the latent walk),
writes each as MIDI, reads it back, and prints per piece the number of tempo and time-signature
events and the longest silence across a seam between two decoded windows, then a summary: how
many seams hold a silence of a bar (16 steps) or more, against the same count for bar lines
inside windows.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import symusic

from musicvae_py.converters.midi_io import read_midi
from musicvae_py.inference import TrainedModel, silence_across


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mel_2bar")
    parser.add_argument("--bars", type=int, default=64)
    parser.add_argument("--pieces", type=int, default=20)
    parser.add_argument("--temperature", type=float, default=0.5)
    args = parser.parse_args()

    model = TrainedModel.load(args.model)
    window = model.steps
    seam_gaps, inner_gaps, seconds = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.pieces):
            started = time.perf_counter()
            piece = model.long_sample(args.bars, args.temperature, seed)
            path = Path(folder) / f"piece-{seed}.mid"
            model.save_midi(piece, path)
            seconds.append(time.perf_counter() - started)
            raw = symusic.Score(str(path))
            steps = args.bars * 16
            sounding = np.zeros(steps, dtype=bool)
            for track in read_midi(path).tracks:
                for start, end in zip(track.start.tolist(), track.end.tolist(), strict=True):
                    sounding[start:end] = True
            seams = [silence_across(sounding, s) for s in range(window, steps, window)]
            inner = [silence_across(sounding, s) for s in range(16, steps, 16) if s % window != 0]
            seam_gaps += seams
            inner_gaps += inner
            print(
                f"piece {seed:>3}: tempo events {len(raw.tempos)}, time signatures "
                f"{len(raw.time_signatures)}, longest seam silence {max(seams)} steps"
            )
    seam_gaps, inner_gaps = np.array(seam_gaps), np.array(inner_gaps)
    print(
        f"{args.model}, {args.pieces} pieces of {args.bars} bars, temperature "
        f"{args.temperature}: seams with a silence of a bar or more: "
        f"{(seam_gaps >= 16).sum()} of {len(seam_gaps)}; bar lines inside windows: "
        f"{(inner_gaps >= 16).sum()} of {len(inner_gaps)}; mean seam silence "
        f"{seam_gaps.mean():.2f} steps (inside {inner_gaps.mean():.2f}); "
        f"{np.mean(seconds):.2f} s per piece"
    )


if __name__ == "__main__":
    main()
