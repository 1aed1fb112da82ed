"""Turn MIDI files and folders into a prepared dataset, in parallel, skipping bad files.

A dataset folder holds `train.npy` and `valid.npy` (uint8 [windows, steps]) and `meta.json`
(the data config, the files of each split and the report). The held-out split is made by file,
so no file contributes windows to both splits.
"""

import csv
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from musicvae_py.configs import DataConfig
from musicvae_py.converters.midi_io import read_midi
from musicvae_py.converters.registry import get_converter
from musicvae_py.errors import DatasetError, FileProblem
from musicvae_py.fileio import writable_folder, write_json, write_with

log = logging.getLogger(__name__)

MIDI_SUFFIXES = (".mid", ".midi")
DATASET_FORMAT = 1

# Every reason a file can be skipped, with what it means; the README lists the same table.
SKIP_REASONS = {
    "unreadable": "not a MIDI file, truncated, malformed, or without read permission",
    "too large": "bigger than the 64 MiB limit",
    "no notes": "the file parses but holds no notes",
    "no melody": "no notes on a melodic track in the pitch and program range (drums only, ...)",
    "no drums": "a drum config, and no drum-channel note of the 9-class kit",
    "no trio": "a trio config, and the file lacks a melody, a bass or a drum part",
    "no roll notes": "a piano-roll config, and no note of a kept track or family in the range",
    "too short": "parts found, but none lasts one window (for trios: all three together)",
    "error": "an unexpected failure while converting; rerun with --debug for the traceback",
}


def find_midi_files(sources: Iterable[str | Path]) -> tuple[list[Path], list[str]]:
    """All MIDI files under `sources` (files or folders, recursive), sorted, each once: a file
    reached by several paths (through links) is listed under its own path when one of them is
    that, else under the first.

    Returns the files and a list of problems met while walking (missing paths, loops).
    """
    found: set[Path] = set()
    problems: list[str] = []
    for source in sources:
        path = Path(source)
        if path.is_file():
            found.add(path)
        elif path.is_dir():
            found.update(_walk(path, problems))
        else:
            problems.append(f"{path}: no such file or folder")
    by_target: dict[str, Path] = {}
    for path in sorted(found, key=lambda p: (os.path.realpath(p) != os.path.abspath(p), p)):
        by_target.setdefault(os.path.realpath(path), path)
    return sorted(by_target.values()), problems


def _walk(root: Path, problems: list[str]) -> Iterator[Path]:
    # os.walk does not follow folder links, so a link loop cannot trap the search;
    # linked folders are followed once each by their resolved path.
    visited: set[Path] = set()
    pending = [root]
    while pending:
        top = pending.pop()
        real = top.resolve()
        if real in visited:
            continue
        visited.add(real)
        for folder, dirs, files in os.walk(top, onerror=lambda e: problems.append(str(e))):
            for name in files:
                if name.lower().endswith(MIDI_SUFFIXES):
                    yield Path(folder) / name
            for name in dirs:
                if os.path.islink(os.path.join(folder, name)):
                    pending.append(Path(folder) / name)


@dataclass
class FileResult:
    """What one file gave: windows and meters, or the reason it was skipped."""

    path: str
    windows: np.ndarray | None = None
    meters: list[str] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    reason: str = ""
    detail: str = ""
    empty_windows: int = 0  # windows with no note sounding, dropped (piano rolls)


def convert_file(path: str, cfg: DataConfig, track_names: tuple[str, ...] = ()) -> FileResult:
    """Extract the windows of one file, or say why there are none. Never raises."""
    try:
        score = read_midi(path)
        if not any(len(t) for t in score.tracks):
            return FileResult(path, reason="no notes")
        if track_names:
            # Files with a track of a wanted name give only those tracks; others give all.
            wanted = {n.lower() for n in track_names}
            named = [t for t in score.tracks if t.name.strip().lower() in wanted]
            score.tracks = named or score.tracks
        extraction = get_converter(cfg.kind).extract(score, cfg)
        if len(extraction.windows) == 0:
            return FileResult(path, reason="too short")
        return FileResult(
            path,
            extraction.windows,
            extraction.meters,
            extraction.starts,
            empty_windows=extraction.empty_windows,
        )
    except FileProblem as err:
        return FileResult(path, reason=err.reason, detail=err.detail)
    except Exception as err:  # a converter bug must not stop a corpus job
        log.debug("conversion of %s failed", path, exc_info=True)
        return FileResult(path, reason="error", detail=f"{type(err).__name__}: {err}")


def _convert_star(args: tuple[str, DataConfig, tuple[str, ...]]) -> FileResult:
    return convert_file(*args)


@dataclass
class PrepareReport:
    """Counts of a prepare run; printed by the command line and saved in meta.json."""

    files_found: int = 0
    files_read: int = 0
    files_skipped: dict[str, int] = field(default_factory=dict)
    windows_kept: dict[str, int] = field(default_factory=dict)
    duplicates_dropped: int = 0
    heldout_seen_in_train: int = 0
    windows_per_meter: dict[str, int] = field(default_factory=dict)
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)
    walk_problems: list[str] = field(default_factory=list)
    files_not_in_split_table: int = 0  # split by hash instead
    empty_windows_dropped: int = 0  # piano rolls: windows in which no note sounds


def split_of(path: str, seed: int, valid_fraction: float) -> str:
    """Seeded split of a file decided by a hash of its file name, so the split does not depend
    on the order of files or on where the corpus lies."""
    digest = hashlib.sha256(f"{seed}:{Path(path).name}".encode()).digest()
    return "valid" if int.from_bytes(digest[:8], "big") / 2**64 < valid_fraction else "train"


SPLIT_NAMES = {"train": "train", "valid": "valid", "validation": "valid", "test": "test"}


def read_split_table(path: str | Path) -> dict[Path, str]:
    """A corpus's own split: a CSV file with a `midi_filename` column (paths relative to the
    CSV's folder) and a `split` column (train, validation or valid, test), as the Groove MIDI
    Dataset's info.csv. Returns resolved file path -> split."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DatasetError(f"{path}: unreadable split table ({err})") from err
    if not rows or not {"midi_filename", "split"} <= set(rows[0]):
        raise DatasetError(f"{path}: a split table needs midi_filename and split columns")
    table = {}
    for line, row in enumerate(rows, 2):
        split = SPLIT_NAMES.get(row["split"].strip().lower())
        if split is None:
            raise DatasetError(f"{path}: line {line}: unknown split {row['split']!r}")
        table[(path.parent / row["midi_filename"]).resolve()] = split
    return table


def prepare_dataset(
    sources: list[str | Path],
    out: str | Path,
    cfg: DataConfig,
    valid_fraction: float = 0.1,
    seed: int = 0,
    workers: int | None = None,
    track_names: tuple[str, ...] = (),
    progress: Callable[[int, int], None] | None = None,
    split_table: dict[Path, str] | None = None,
) -> PrepareReport:
    """Convert every MIDI file under `sources` into a dataset folder `out`.

    Files are split by `split_table` (see `read_split_table`) when given, else, and for files
    the table does not name, by a seeded hash of the name. Duplicate windows are dropped within
    each split. `progress(done, total)` is called once with `done` 0 when the checks that can
    end the job (files found, `out` writable) have passed, then after each file. Returns the
    report, also saved in `out/meta.json`.
    """
    files, problems = find_midi_files(sources)
    report = PrepareReport(files_found=len(files), walk_problems=problems)
    if not files:
        message = (
            f"{', '.join(map(str, sources))}: no MIDI files found (none ends in .mid or .midi)"
        )
        if problems:
            more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
            message = f"no MIDI files found: {'; '.join(problems[:3])}{more}"
        raise DatasetError(message)
    writable_folder(out)

    workers = workers or os.cpu_count() or 1
    jobs = [(str(f), cfg, tuple(track_names)) for f in files]
    splits = ("train", "valid", "test") if split_table else ("train", "valid")
    kept: dict[str, list[np.ndarray]] = {s: [] for s in splits}
    meters: dict[str, list[str]] = {s: [] for s in splits}
    split_files: dict[str, list[str]] = {s: [] for s in splits}
    skipped: Counter[str] = Counter()
    if progress:
        progress(0, len(jobs))
    results = _run(jobs, workers)
    for done, result in enumerate(results, 1):
        if result.windows is None:
            skipped[result.reason] += 1
            examples = report.skipped_examples.setdefault(result.reason, [])
            if len(examples) < 5:
                examples.append(f"{result.path}: {result.detail}" if result.detail else result.path)
        else:
            report.files_read += 1
            report.empty_windows_dropped += result.empty_windows
            split = (split_table or {}).get(Path(result.path).resolve())
            if split is None:
                report.files_not_in_split_table += bool(split_table)
                split = split_of(result.path, seed, valid_fraction)
            kept[split].append(result.windows)
            meters[split].extend(result.meters)
            split_files[split].append(result.path)
        if progress:
            progress(done, len(jobs))
    report.files_skipped = dict(skipped.most_common())

    arrays, per_meter = {}, Counter()
    train_keys: set[bytes] = set()
    for split in splits:
        empty = np.zeros((0, *cfg.window_shape))
        rows = (np.concatenate(kept[split]) if kept[split] else empty).astype(cfg.storage_dtype)
        _, first = np.unique(rows, axis=0, return_index=True) if len(rows) else ([], [])
        first = np.sort(np.asarray(first, dtype=np.int64))
        report.duplicates_dropped += len(rows) - len(first)
        arrays[split] = rows[first]
        per_meter.update(meters[split][i] for i in first)
        keys = {r.tobytes() for r in arrays[split]}
        if split == "train":
            train_keys = keys
        else:
            report.heldout_seen_in_train += len(keys & train_keys)
        report.windows_kept[split] = len(first)
    report.windows_per_meter = dict(per_meter.most_common())

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # meta.json is written last and marks a complete dataset: an older one goes first, so a
    # run that fails half way never leaves new arrays under old counts
    (out / "meta.json").unlink(missing_ok=True)
    for split, rows in arrays.items():
        write_with(out / f"{split}.npy", lambda tmp, r=rows: _save_npy(tmp, r))
    meta = {
        "format": DATASET_FORMAT,
        "data": asdict(cfg),
        "splits": {s: {"windows": len(arrays[s]), "files": sorted(split_files[s])} for s in arrays},
        "seed": seed,
        "valid_fraction": valid_fraction,
        "track_names": list(track_names),
        "report": asdict(report),
    }
    write_json(out / "meta.json", meta)
    log.info("prepared %s: %s", out, report.windows_kept)
    return report


def _save_npy(path: Path, rows: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, rows)


def _run(jobs: list[tuple[str, DataConfig, tuple[str, ...]]], workers: int) -> Iterator[FileResult]:
    if workers <= 1 or len(jobs) < 8:
        yield from map(_convert_star, jobs)
        return
    with get_context("spawn").Pool(workers) as pool:
        yield from pool.imap_unordered(_convert_star, jobs, chunksize=16)
