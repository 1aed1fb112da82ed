"""Safe file output: write to a temporary name in the same folder, then rename.

A process killed at any moment leaves either the old file or the new one, never half of one.
"""

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from musicvae_py.errors import MusicVAEError, OutputExistsError


@contextmanager
def atomic_path(path: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` when the block succeeds."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: already exists (use --force to overwrite)")
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
    except OSError as err:
        raise MusicVAEError(f"{folder}: cannot write here ({err.strerror})") from err
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp
        # temporary files are private, and some writers replace the file with a private one
        # of their own: outputs get the usual mode
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as err:
        raise MusicVAEError(f"{path}: write failed ({err.strerror or err})") from err
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path: str | Path, data: bytes, overwrite: bool = True) -> None:
    """Write `data` to `path` atomically, flushed to disk before the rename."""
    with atomic_path(path, overwrite) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_json(path: str | Path, obj: Any, overwrite: bool = True) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), overwrite)


def write_with(path: str | Path, writer: Callable[[Path], None], overwrite: bool = True) -> None:
    """Call `writer(tmp_path)` and rename its output onto `path` when it succeeds. A writer
    from a native library reports a full disk with its own error type; that is a failed write
    too."""
    with atomic_path(path, overwrite) as tmp:
        try:
            writer(tmp)
        except (OSError, MusicVAEError):
            raise
        except Exception as err:
            raise MusicVAEError(f"{path}: write failed ({err})") from err


def writable_folder(path: str | Path) -> Path:
    """Create the folder `path` if needed and check that files can be made in it, so that a
    long job fails before its work rather than at its first write."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise MusicVAEError(f"{path}: cannot write here ({err.strerror or err})") from err
    return path


@contextmanager
def removed_if_left_empty(path: str | Path) -> Iterator[None]:
    """Run the block; when it raises, remove again the folders it made at `path` (and the
    missing folders above it) that are still empty, so a refused job leaves nothing behind.
    A folder that existed before, or that holds anything, is kept."""
    path = Path(path)
    created = []
    for folder in (path, *path.parents):
        if folder.exists() or folder.is_symlink():
            break
        created.append(folder)
    try:
        yield
    except BaseException:
        for folder in created:  # deepest first
            try:
                folder.rmdir()
            except OSError:  # not empty, or already gone
                break
        raise


def check_writable(paths: list[Path], overwrite: bool) -> None:
    """Refuse before any work starts when an output exists and `overwrite` is False."""
    if overwrite:
        return
    for path in paths:
        if path.exists():
            raise OutputExistsError(f"{path}: already exists (use --force to overwrite)")
