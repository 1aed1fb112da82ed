"""Fuzzing the MIDI reader and the converters, for minutes, outside CI.

    python benchmarks/fuzz_midi.py [--minutes 5] [--seed 0] [--out fuzz-findings]
        [--time-limit 10] [--memory-limit-gb 4]

Hypothesis draws inputs of three families: standard MIDI files assembled from arbitrary events
(any status byte, wrong lengths, missing end-of-track, huge delta times, odd headers); byte
mutations of well-formed seed files (flips, insertions, deletions, truncations); and files
written by symusic from arbitrary notes, tempos and time signatures. Each input is written to
a file and read with `read_midi`, then cut into windows by every converter (melody, drums,
trio) and by `convert_file`, as `musicvae prepare` does.

An outcome is fine when it is windows that fit the data config, or the toolkit's own error (a
`MusicVAEError`, whose reason is one of `SKIP_REASONS`). Anything else is a failure and is
saved under --out with what went wrong: another exception (Hypothesis shrinks it to a small
input first), windows that break an invariant (shape, token range, a melody note-off while
nothing sounds), more than --time-limit seconds, or more than --memory-limit-gb of memory.
Inputs run in a child process, so a native crash of the parser is caught as well: the parent
keeps the input that killed the child and starts a new one.

The same `check` function could be driven by atheris (coverage-guided; `pip install atheris`,
not a dependency of the toolkit) through `atheris.Setup(sys.argv, lambda b: check(b, path))`.
"""

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

from musicvae_py.configs import get_config
from musicvae_py.converters.melody import FIRST_PITCH_TOKEN, NOTE_OFF
from musicvae_py.converters.midi_bytes import END_OF_TRACK, chunk, header_chunk, track_body, vlq
from musicvae_py.converters.midi_io import read_midi
from musicvae_py.converters.registry import get_converter
from musicvae_py.data.prepare import SKIP_REASONS, convert_file
from musicvae_py.errors import MusicVAEError

KINDS = {
    "melody": get_config("mel_2bar_tiny").data,
    "drums": get_config("drums_2bar_tiny").data,
    "trio": get_config("trio_16bar_hierdec_tiny").data,
}


class SlowInput(Exception):
    """One input took longer than the time limit."""


class InvariantBroken(AssertionError):
    """Windows came out, but one breaks a rule of its encoding."""


# ---------------------------------------------------------------------------------------------
# inputs


def seed_files() -> list[bytes]:
    """Well-formed files to mutate: a melody, drums, a trio, meter and tempo changes."""
    import symusic

    files = []
    for variant in range(4):
        score = symusic.Score(480)
        score.tempos.append(symusic.Tempo(0, 90.0 + 30 * variant))
        score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
        if variant == 3:
            for bar in range(1, 8):
                score.time_signatures.append(symusic.TimeSignature(bar * 1920, 3 + bar % 3, 4))
        melody = symusic.Track("melody", 0, False)
        bass = symusic.Track("bass", 33, False)
        drums = symusic.Track("drums", 0, True)
        for step in range(0, 128, 2):
            melody.notes.append(symusic.Note(step * 120, 240, 60 + (step * 7) % 24, 90))
            if step % 8 == 0:
                bass.notes.append(symusic.Note(step * 120, 960, 36 + step % 12, 90))
            drums.notes.append(symusic.Note(step * 120, 60, (36, 38, 42, 46)[step % 4], 90))
        score.tracks.extend([melody, bass, drums][: variant + 1 if variant < 3 else 3])
        files.append(bytes(score.dumps_midi()))
    return files


def strategies(seeds: list[bytes]):
    """The Hypothesis strategy of (family, bytes) inputs."""
    from hypothesis import strategies as st

    data_byte = st.integers(0, 127)
    any_byte = st.integers(0, 255)
    delta = st.one_of(st.integers(0, 960), st.integers(0, 0x0FFFFFFF))
    channel_event = st.builds(
        lambda status, a, b: bytes([status, a, b]), st.integers(0x80, 0xEF), data_byte, data_byte
    )
    short_event = st.builds(
        lambda status, a: bytes([status, a]), st.integers(0xC0, 0xDF), data_byte
    )
    running = st.builds(lambda a, b: bytes([a, b]), data_byte, data_byte)
    meta_type = st.sampled_from([0x00, 0x01, 0x03, 0x20, 0x21, 0x2F, 0x51, 0x54, 0x58, 0x59, 0x7F])
    meta = st.builds(
        lambda kind, body, wrong: b"\xff" + bytes([kind]) + vlq(len(body) + wrong) + body,
        st.one_of(meta_type, any_byte),
        st.binary(max_size=8),
        st.sampled_from([0, 0, 0, 1, 2, 100]),
    )
    sysex = st.builds(
        lambda kind, body: bytes([kind]) + vlq(len(body)) + body,
        st.sampled_from([0xF0, 0xF7]),
        st.binary(max_size=16),
    )
    garbage = st.binary(min_size=1, max_size=6)
    event = st.one_of(channel_event, short_event, running, meta, sysex, garbage)
    bodies = st.builds(
        track_body,
        st.lists(st.tuples(delta, event), max_size=40),
        st.sampled_from([END_OF_TRACK, b"", END_OF_TRACK[:-1]]),
    )
    track = st.builds(
        lambda body, wrong: chunk(b"MTrk", body, None if wrong is None else len(body) + wrong),
        bodies,
        st.one_of(st.none(), st.none(), st.integers(-8, 8), st.integers(0, 2**32 - 1 - 4096)),
    )
    raw = st.builds(
        lambda fmt, declared, division, tracks, tail: (
            header_chunk(len(tracks) if declared is None else declared, division, fmt)
            + b"".join(tracks)
            + tail
        ),
        st.sampled_from([0, 1, 2, 3, 0xFFFF]),
        st.one_of(st.none(), st.none(), st.integers(0, 0xFFFF)),
        st.one_of(st.sampled_from([1, 4, 96, 480, 0x7FFF, 0]), st.integers(0, 0xFFFF)),
        st.lists(track, max_size=4),
        st.one_of(st.just(b""), st.binary(max_size=16)),
    )

    mutation = st.tuples(
        st.sampled_from(["flip", "set", "insert", "delete", "truncate", "repeat"]),
        st.floats(0, 1),
        st.binary(min_size=1, max_size=8),
    )
    mutated = st.builds(_mutate, st.sampled_from(seeds), st.lists(mutation, min_size=1, max_size=6))

    note = st.tuples(
        st.one_of(st.integers(0, 4000), st.integers(0, 2**31 - 1)),
        st.one_of(st.integers(-480, 4000), st.integers(-(2**31), 2**31 - 1)),
        st.integers(0, 127),
        st.integers(1, 127),
    )
    score_track = st.tuples(
        st.integers(0, 127), st.booleans(), st.lists(note, max_size=60), st.text(max_size=8)
    )
    notes = st.builds(
        _score_bytes,
        st.one_of(st.sampled_from([1, 4, 96, 480, 960]), st.integers(1, 32767)),
        st.lists(score_track, max_size=5),
        st.lists(
            st.tuples(st.integers(0, 20000), st.integers(0, 255), st.integers(0, 255)), max_size=6
        ),
        st.lists(st.tuples(st.integers(0, 20000), st.integers(1, 0xFFFFFF)), max_size=4),
    )
    return st.one_of(
        st.tuples(st.just("raw"), raw),
        st.tuples(st.just("mutated"), mutated),
        st.tuples(st.just("notes"), notes),
    )


def _mutate(seed: bytes, mutations: list[tuple[str, float, bytes]]) -> bytes:
    data = bytearray(seed)
    for op, where, payload in mutations:
        at = int(where * max(len(data) - 1, 0))
        if op == "flip" and data:
            data[at] ^= 1 << (payload[0] % 8)
        elif op == "set" and data:
            data[at : at + len(payload)] = payload
        elif op == "insert":
            data[at:at] = payload
        elif op == "delete":
            del data[at : at + payload[0] % 32 + 1]
        elif op == "truncate":
            del data[at:]
        elif op == "repeat":
            data[at:at] = data[at : at + payload[0] % 64 + 1]
    return bytes(data)


def _score_bytes(tpq: int, tracks: list, signatures: list, tempos: list) -> bytes:
    import symusic

    score = symusic.Score(tpq)
    for time_, numerator, denominator in signatures:
        score.time_signatures.append(symusic.TimeSignature(time_, numerator, denominator))
    for time_, mspq in tempos:
        score.tempos.append(symusic.Tempo(time_, 60_000_000 / mspq))
    for program, is_drum, notes, name in tracks:
        track = symusic.Track(name, program, is_drum)
        for onset, duration, pitch, velocity in notes:
            track.notes.append(symusic.Note(onset, duration, pitch, velocity))
        score.tracks.append(track)
    return bytes(score.dumps_midi())


# ---------------------------------------------------------------------------------------------
# the check


def check(data: bytes, path: Path) -> list[str]:
    """Read `data` as a MIDI file and extract it with every converter. Returns the outcome
    labels; raises on anything but windows or the toolkit's own error."""
    path.write_bytes(data)
    try:
        score = read_midi(path)
    except MusicVAEError as err:
        return [f"refused: {getattr(err, 'reason', type(err).__name__)}"]
    labels = ["read"]
    for kind, cfg in KINDS.items():
        try:
            extraction = get_converter(cfg.kind).extract(score, cfg)
        except MusicVAEError as err:
            labels.append(f"{kind}: {getattr(err, 'reason', type(err).__name__)}")
            continue
        windows = extraction.windows
        n = len(windows)
        if windows.shape[1:] != cfg.window_shape:
            raise AssertionError(f"{kind}: windows of shape {windows.shape}")
        if not (len(extraction.meters) == len(extraction.starts) == n):
            raise AssertionError(f"{kind}: {n} windows, {len(extraction.meters)} meters")
        if n and (windows.min() < 0 or cfg.window_problem(windows)):
            raise AssertionError(f"{kind}: {cfg.window_problem(windows) or 'negative token'}")
        labels.append(f"{kind}: {'windows' if n else 'too short'}")
    result = convert_file(str(path), KINDS["melody"])
    if result.reason and result.reason not in SKIP_REASONS:
        raise AssertionError(f"convert_file gave an unlisted reason {result.reason!r}")
    if result.reason == "error":
        raise AssertionError(f"convert_file caught a failure: {result.detail}")
    if result.windows is not None:
        stray = stray_note_off(result.windows)
        if stray is not None:
            raise InvariantBroken(f"melody window {stray}: a note-off while nothing sounds")
    return labels


def stray_note_off(windows: np.ndarray) -> int | None:
    """The first melody window [n, steps] holding a note-off while no note sounds, or None.
    A window may open inside a note, so a note-off before any note-on is allowed."""
    for index, row in enumerate(windows.tolist()):
        sounding = True  # before its first event, a window may be inside a note
        for token in row:
            if token == NOTE_OFF and not sounding:
                return index
            if token >= NOTE_OFF:
                sounding = token >= FIRST_PITCH_TOKEN
    return None


# ---------------------------------------------------------------------------------------------
# the child: Hypothesis runs until the deadline


def run_child(args: argparse.Namespace) -> None:
    from hypothesis import HealthCheck, Phase, given, seed, settings

    out = Path(args.out)
    limit = int(args.memory_limit_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    current = out / "current.mid"
    summary_path = out / f"summary-{args.seed}.json"
    counts: Counter[str] = Counter()
    families: Counter[str] = Counter()
    failures: list[dict] = []
    seen_failures: set[str] = set()
    slowest = [0.0, ""]
    checking = [0.0]  # seconds spent in `check`, the rest is Hypothesis drawing inputs
    deadline = time.monotonic() + args.seconds
    last_write = [0.0]

    def on_alarm(signum, frame):
        raise SlowInput(f"over {args.time_limit} s")

    signal.signal(signal.SIGALRM, on_alarm)

    def save_summary() -> None:
        summary = {
            "inputs": sum(families.values()),
            "families": dict(families),
            "outcomes": dict(counts.most_common()),
            "failures": failures,
            "slowest_s": round(slowest[0], 3),
            "slowest_family": slowest[1],
            "slowest_file": f"slowest-{args.seed}.mid",
            "checking_s": round(checking[0], 1),
        }
        summary_path.write_text(json.dumps(summary, indent=2))

    def record(kind: str, family: str, data: bytes, detail: str) -> None:
        key = f"{kind}: {detail.splitlines()[0][:120]}"
        if key in seen_failures:
            return
        seen_failures.add(key)
        name = f"failure-{args.seed}-{len(failures)}.mid"
        (out / name).write_bytes(data)
        failures.append({"kind": kind, "family": family, "file": name, "detail": detail[-2000:]})

    strategy = strategies(seed_files())
    batch = 0
    last_failing: list = []  # family, bytes and traceback of the latest failing example
    while time.monotonic() < deadline:
        batch += 1
        last_failing.clear()

        @seed(args.seed * 100_003 + batch)
        @settings(
            max_examples=300,
            deadline=None,
            database=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def fuzz(example: tuple[str, bytes]) -> None:
            family, data = example
            started = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, args.time_limit)
            try:
                labels = check(data, current)
            except SlowInput as err:
                record("slow", family, data, str(err))
                return
            except InvariantBroken as err:
                counts["invariant broken"] += 1
                record("invariant", family, data, str(err))
                return
            except MemoryError:
                record("memory", family, data, f"over {args.memory_limit_gb} GB")
                return
            except Exception:
                last_failing[:] = [family, data, traceback.format_exc()]
                raise
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            elapsed = time.monotonic() - started
            checking[0] += elapsed
            if elapsed > slowest[0]:
                slowest[:] = [elapsed, family]
                (out / f"slowest-{args.seed}.mid").write_bytes(data)
            families[family] += 1
            counts.update(labels)
            if time.monotonic() - last_write[0] > 5:
                save_summary()
                last_write[0] = time.monotonic()

        try:
            fuzz()
        except Exception:
            if last_failing:  # the shrunk example is the last one that failed
                family, data, detail = last_failing
                record("exception", family, data, detail)
    save_summary()


# ---------------------------------------------------------------------------------------------
# the parent: children until the time is up, crashes kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="fuzz-findings")
    parser.add_argument("--time-limit", type=float, default=10.0, help="Seconds per input.")
    parser.add_argument("--memory-limit-gb", type=float, default=4.0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.child:
        run_child(args)
        return

    started = time.monotonic()
    deadline = started + 60 * args.minutes
    child_seed, crashes = args.seed, []
    while (left := deadline - time.monotonic()) > 1:
        command = [sys.executable, __file__, "--child", "--out", str(out), "--seed"]
        command += [str(child_seed), "--seconds", f"{left:.1f}"]
        command += ["--time-limit", str(args.time_limit)]
        command += ["--memory-limit-gb", str(args.memory_limit_gb)]
        done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if done.returncode != 0:
            name = f"crash-{child_seed}.mid"
            current = out / "current.mid"
            if current.exists():
                os.replace(current, out / name)
            cause = (
                f"signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
            )
            crashes.append({"kind": "crash", "file": name, "detail": cause})
            print(f"child {child_seed} died ({cause}); input kept as {out / name}", flush=True)
        child_seed += 1

    report(out, args.seed, child_seed, crashes, time.monotonic() - started)


def report(out: Path, first: int, end: int, crashes: list[dict], elapsed: float) -> None:
    """Merge the children's summaries and print what was tried and what failed."""
    inputs, families, outcomes, failures = 0, Counter(), Counter(), list(crashes)
    slowest, slowest_file, checking = 0.0, "", 0.0
    for child in range(first, end):
        path = out / f"summary-{child}.json"
        if not path.exists():
            continue
        summary = json.loads(path.read_text())
        inputs += summary["inputs"]
        families.update(summary["families"])
        outcomes.update(summary["outcomes"])
        failures += summary["failures"]
        checking += summary["checking_s"]
        if summary["slowest_s"] > slowest:
            slowest, slowest_file = summary["slowest_s"], summary["slowest_file"]
    print(
        f"fuzzed for {elapsed / 60:.1f} min: {inputs} inputs ({inputs / elapsed:.0f}/s, "
        f"{checking:.0f} s of it reading and converting)"
    )
    print("families: " + ", ".join(f"{k} {v}" for k, v in sorted(families.items())))
    print(f"slowest input: {slowest * 1000:.0f} ms ({out / slowest_file})")
    print("outcomes:")
    for label, count in sorted(outcomes.items(), key=lambda kv: -kv[1]):
        print(f"  {label:<28} {count}")
    print(f"failures: {len(failures)}")
    for failure in failures:
        detail = failure["detail"].strip().splitlines()[-1]
        print(f"  {failure['kind']:<10} {out / failure['file']}  {detail}")


if __name__ == "__main__":
    main()
