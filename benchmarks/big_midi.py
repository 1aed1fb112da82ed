"""A very large MIDI file: time and peak memory of reading it and of `musicvae prepare` on it.

    python benchmarks/big_midi.py [--megabytes 50] [--tracks 16] [--chord 3]
        [--phrase-bars 64] [--config mel_2bar_small] [--seed 0]

Writes a valid standard MIDI file of about --megabytes MB (10**6 bytes) into a temporary
folder: a conductor track (tempo, 4/4) and --tracks instrument tracks, each playing a chord of
--chord notes on every 16th step (a random walk of roots, programs spread over the General MIDI
families, one track on the drum channel) in phrases of --phrase-bars bars, each followed by a
bar of silence (melodies are cut at 100 bars, so one endless phrase would give few windows),
with as many steps as the size asks for. Then, each in its own process so that the peak memory
is its own:

- `read_midi` on the file: seconds, notes and steps read, and the peak resident memory before
  and after the call (the first is the interpreter and the imports);
- `musicvae prepare FILE --config CONFIG --workers 1`: seconds, peak memory (beside that of
  the same command on a one-note file) and the report it prints.

Last, a file one byte over the reader's size limit (`MAX_FILE_BYTES`, a sparse file that takes
no disk) is read to show that it is refused before parsing. The temporary folder is deleted at
the end. Peak memory is `ru_maxrss` of each process (resource.getrusage / os.wait4).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from musicvae_py.converters.midi_bytes import END_OF_TRACK, chunk, header_chunk, track_body, vlq

TICKS_PER_QUARTER = 480
TICKS_PER_STEP = TICKS_PER_QUARTER // 4  # one 16th note; below 128, so one delta byte
DRUM_CHANNEL = 9
DRUM_PITCHES = (36, 38, 42, 46, 45, 48, 50, 49, 51)  # one pitch of each class of the kit
EVENT_BYTES = 4  # delta (one byte) + status + two data bytes; no running status


# ---------------------------------------------------------------------------------------------
# the file


def conductor_track() -> bytes:
    """Tempo 120 qpm and a 4/4 time signature at tick 0, then the end of the track."""
    tempo = b"\xff\x51\x03" + (500_000).to_bytes(3, "big")
    meter = b"\xff\x58\x04\x04\x02\x18\x08"
    return chunk(b"MTrk", track_body([(0, tempo), (0, meter)]))


def instrument_track(
    index: int, steps: int, chord: int, phrase_bars: int, rng: np.random.Generator
) -> bytes:
    """One track of `steps` 16th steps with `chord` one-step notes on each step, in phrases of
    `phrase_bars` bars separated by a bar of silence (so melodies end and start again).

    Each step is `chord` note-ons at delta 0 followed by `chord` note-offs, the first one a
    16th later; every event is 4 bytes, so a step is 8 * chord bytes and the events are built
    as one uint8 array [steps, 2 * chord, 4]. The first note-on of a phrase waits out the bar
    of silence instead (a two-byte delta).
    """
    channel = index % 16
    if channel == DRUM_CHANNEL:
        choice = np.argsort(rng.random((steps, len(DRUM_PITCHES))), axis=1)[:, :chord]
        pitches = np.asarray(DRUM_PITCHES)[choice]
        program = 0
    else:
        # a random walk of chord roots folded into 36..84, a triad-like stack above each root
        roots = 60 + np.cumsum(rng.integers(-2, 3, steps))
        roots = 36 + np.abs((roots - 36) % 96 - 48)
        pitches = roots[:, None] + np.asarray([0, 4, 7, 12, 16, 19, 24][:chord])[None, :]
        program = (index * 8) % 128
    velocity = rng.integers(40, 120, (steps, chord))

    events = np.zeros((steps, 2 * chord, EVENT_BYTES), dtype=np.uint8)
    events[:, :chord, 1] = 0x90 | channel
    events[:, :chord, 2] = pitches
    events[:, :chord, 3] = velocity
    events[:, chord, 0] = TICKS_PER_STEP  # the notes end one 16th after they start
    events[:, chord:, 1] = 0x80 | channel
    events[:, chord:, 2] = pitches

    phrase_steps = phrase_bars * 16
    rest = vlq(16 * TICKS_PER_STEP)
    phrases = [bytes([0x00, 0xC0 | channel, program])]
    for first in range(0, steps, phrase_steps):
        block = events[first : first + phrase_steps].tobytes()
        phrases.append(block if first == 0 else rest + block[1:])
    return chunk(b"MTrk", b"".join(phrases) + END_OF_TRACK)


def big_midi(
    target_bytes: int, tracks: int, chord: int, phrase_bars: int, seed: int
) -> tuple[bytes, int]:
    """A format-1 MIDI file of about `target_bytes`, and the number of steps each track has."""
    steps = max(1, target_bytes // (tracks * 2 * chord * EVENT_BYTES))
    rng = np.random.default_rng(seed)
    header = header_chunk(tracks + 1, TICKS_PER_QUARTER)
    body = [instrument_track(i, steps, chord, phrase_bars, rng) for i in range(tracks)]
    return header + conductor_track() + b"".join(body), steps


# ---------------------------------------------------------------------------------------------
# the measurements, each in a child process


def peak_mib(usage: resource.struct_rusage) -> float:
    """ru_maxrss in MiB (Linux reports kibibytes)."""
    return usage.ru_maxrss / 1024


def read_in_child(path: str) -> None:
    """Child mode: read `path` with read_midi and print what it took as JSON."""
    import symusic  # noqa: F401  (read_midi imports it on first use; not part of the timing)

    from musicvae_py.converters.midi_io import read_midi
    from musicvae_py.errors import MusicVAEError

    before = peak_mib(resource.getrusage(resource.RUSAGE_SELF))
    started = time.perf_counter()
    try:
        score = read_midi(path)
        outcome = {
            "tracks": len(score.tracks),
            "notes": sum(len(t) for t in score.tracks),
            "last_step": max((int(t.end.max()) for t in score.tracks if len(t)), default=0),
        }
    except MusicVAEError as err:
        outcome = {"error": str(err)}
    outcome["seconds"] = time.perf_counter() - started
    outcome["peak_before_mib"] = before
    outcome["peak_mib"] = peak_mib(resource.getrusage(resource.RUSAGE_SELF))
    print(json.dumps(outcome))


def run_measured(command: list[str]) -> tuple[str, str, float, float, int]:
    """Run `command` and return stdout, stderr, seconds, its own peak memory (MiB), status."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        # wait4 gives this child's own usage; RUSAGE_CHILDREN would be the maximum over all
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return out.read(), err.read(), seconds, peak_mib(usage), os.waitstatus_to_exitcode(status)


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=50.0, help="File size, 10**6 bytes.")
    parser.add_argument("--tracks", type=int, default=16, help="Instrument tracks.")
    parser.add_argument("--chord", type=int, default=3, help="Notes per step per track (1-7).")
    parser.add_argument(
        "--phrase-bars", type=int, default=64, help="Bars between two bars of silence."
    )
    parser.add_argument("--config", default="mel_2bar_small", help="Config of the prepare run.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--read", metavar="FILE", help=argparse.SUPPRESS)
    parser.add_argument("--write", metavar="FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 1 <= args.chord <= 7:
        parser.error("--chord must be 1..7")
    if args.read:
        read_in_child(args.read)
        return
    if args.write:
        size = int(args.megabytes * 1e6)
        data, steps = big_midi(size, args.tracks, args.chord, args.phrase_bars, args.seed)
        Path(args.write).write_bytes(data)
        print(json.dumps({"steps": steps}))
        return

    from musicvae_py.converters.midi_io import MAX_FILE_BYTES

    with tempfile.TemporaryDirectory(prefix="big-midi-") as folder:
        # the file is made in a child too: a forked child starts with the parent's peak
        # memory as its own, so the parent stays small
        path = Path(folder) / "big.mid"
        command = [sys.executable, __file__, "--write", path, "--megabytes", str(args.megabytes)]
        command += ["--tracks", str(args.tracks), "--chord", str(args.chord)]
        command += ["--phrase-bars", str(args.phrase_bars), "--seed", str(args.seed)]
        out, err, seconds, peak, status = run_measured(command)
        if status != 0:
            sys.exit(f"writing the file failed with status {status}\n{err}")
        steps = json.loads(out)["steps"]
        size = path.stat().st_size

        def here(text: str) -> str:
            """Messages name files without the temporary folder."""
            return text.replace(f"{folder}/", "")

        print(
            f"file:       {size / 1e6:.1f} MB ({size / 2**20:.1f} MiB), "
            f"{steps * args.tracks * args.chord} notes: {args.tracks} tracks x {steps} steps x "
            f"{args.chord} ({steps // 16} bars), {seconds:.1f} s"
        )

        out, err, seconds, peak, status = run_measured([sys.executable, __file__, "--read", path])
        read = json.loads(out) if status == 0 else {"error": f"status {status}: {err.strip()}"}
        if "error" in read:
            print(f"read_midi:  failed: {here(read['error'])}")
        else:
            print(
                f"read_midi:  {read['seconds']:.2f} s, peak memory {read['peak_mib']:.0f} MiB "
                f"({read['peak_before_mib']:.0f} MiB before the call), {read['notes']} notes, "
                f"last step {read['last_step']}"
            )

        # the same command on a one-note file first: the memory of the interpreter and imports
        small = Path(folder) / "small.mid"
        small.write_bytes(big_midi(1, 1, 1, args.phrase_bars, args.seed)[0])
        cli = "from musicvae_py.cli.main import main; main()"  # the `musicvae` entry point
        command = [sys.executable, "-c", cli, "prepare", "--config", args.config, "--workers", "1"]
        _, _, _, baseline, _ = run_measured([*command, small, "--out", Path(folder) / "small"])
        out, err, seconds, peak, status = run_measured(
            [*command, path, "--out", Path(folder) / "dataset"]
        )
        print(f"prepare:    --config {args.config} --workers 1, exit status {status}")
        print(
            f"            {seconds:.1f} s, peak memory {peak:.0f} MiB ({baseline:.0f} MiB for a "
            "one-note file)"
        )
        for line in out.strip().splitlines():
            print(f"  | {here(line)}")
        if status != 0:
            for line in err.strip().splitlines()[-5:]:
                print(f"  ! {here(line)}")

        # over the limit: a sparse file with a MIDI header, refused before it is read
        over = Path(folder) / "over-limit.mid"
        with open(over, "wb") as f:
            f.write(b"MThd")
            f.truncate(MAX_FILE_BYTES + 1)
        out, err, seconds, peak, status = run_measured([sys.executable, __file__, "--read", over])
        read = json.loads(out) if status == 0 else {"error": f"status {status}: {err.strip()}"}
        outcome = here(read.get("error", "read without error"))
        print(
            f"over limit: {MAX_FILE_BYTES + 1} bytes, {read.get('seconds', 0) * 1000:.2f} ms: "
            f"{outcome}"
        )
    print("temporary files deleted")


if __name__ == "__main__":
    main()
