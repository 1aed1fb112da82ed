"""Corpus preparation throughput, in MIDI files per second.

    python benchmarks/prepare_throughput.py [SRC ...] [--workers N] [--compare-pretty-midi]

Defaults to the Nottingham and POP909 folders of ../shared/datasets when they exist. With
--compare-pretty-midi it also times parsing the same files with pretty_midi (the pure-Python
reader that note-seq builds on), single process, on the first 200 files.
"""

import argparse
import tempfile
import time
from pathlib import Path

from musicvae_py.configs import get_config
from musicvae_py.data.prepare import find_midi_files, prepare_dataset

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "midi"
DEFAULT_SOURCES = [SHARED / "nottingham" / "melody", SHARED / "pop909"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", default=[str(p) for p in DEFAULT_SOURCES])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--compare-pretty-midi", action="store_true")
    args = parser.parse_args()

    files, _ = find_midi_files(args.sources)
    if not files:
        raise SystemExit("no MIDI files found; pass folders of MIDI files")
    data = get_config("mel_2bar_small").data
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        report = prepare_dataset(args.sources, out, data, workers=args.workers)
        elapsed = time.perf_counter() - started
    windows = sum(report.windows_kept.values())
    print(
        f"prepare: {len(files)} files in {elapsed:.2f} s = {len(files) / elapsed:.0f} files/s "
        f"({windows} windows, workers={args.workers or 'all cores'})"
    )

    if args.compare_pretty_midi:
        import pretty_midi

        from musicvae_py.converters.midi_io import read_midi

        sample = files[:200]
        started = time.perf_counter()
        for f in sample:
            pretty_midi.PrettyMIDI(str(f))
        slow = time.perf_counter() - started
        started = time.perf_counter()
        for f in sample:
            read_midi(f)
        fast = time.perf_counter() - started
        print(
            f"parse only, {len(sample)} files, one process: pretty_midi "
            f"{len(sample) / slow:.0f} files/s, musicvae_py.read_midi {len(sample) / fast:.0f}"
            f" files/s ({slow / fast:.0f}x)"
        )


if __name__ == "__main__":
    main()
