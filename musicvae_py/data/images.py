"""Image datasets: MNIST-style IDX files, or any folder of PNG/JPEG images.

    dataset = load_image_dataset("data/mnist", get_config("mnist_conv_ae").data)
    images, labels = dataset.batch("valid", torch.arange(8))  # [8, 1, 28, 28] in [0, 1], [8]

A folder holding the four standard IDX files (gzipped or not) is read as MNIST: "train" is the
training set and "valid" the official test set. Any other folder is a folder of images: the
first-level folders name the labels (like class folders), images are resized to the config's
size and converted to grey or RGB; `train/` and `valid/` (or `test/`) folders give the splits,
else a seeded `valid_fraction` of the images is held out.
"""

import gzip
import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musicvae_py.configs import Config, ImageDataConfig
from musicvae_py.errors import DatasetError

log = logging.getLogger(__name__)

# IDX type codes: https://yann.lecun.com/exdb/mnist/ (the format section) lists these six.
IDX_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "valid": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "valid")


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file, gzipped or not (told apart by its first bytes): [dims...] array.

    Raises DatasetError naming the file when it is missing, truncated or malformed.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DatasetError(f"{path}: cannot read ({err.strerror})") from err
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except EOFError as err:
            raise DatasetError(f"{path}: truncated gzip stream (the file is cut short)") from err
        except (OSError, zlib.error) as err:
            raise DatasetError(f"{path}: corrupt gzip data ({err})") from err

    if len(raw) < 4:
        raise DatasetError(f"{path}: truncated IDX file ({len(raw)} bytes, no header)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise DatasetError(
            f"{path}: not an IDX file (magic {int.from_bytes(raw[:4], 'big')}; "
            "expected 2051 for images, 2049 for labels)"
        )
    dtype, ndim = IDX_TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: truncated IDX header ({len(raw)} of {header} bytes)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found < expected:
        dims = " x ".join(map(str, shape))
        raise DatasetError(
            f"{path}: truncated IDX data (the header says {dims}, {expected} bytes; "
            f"the file holds {found})"
        )
    if found > expected:
        raise DatasetError(f"{path}: malformed IDX file ({found - expected} bytes past the data)")
    values = np.frombuffer(raw, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return values.reshape(shape).astype(dtype.newbyteorder("="))  # native order, writable


def find_idx(folder: Path, stem: str) -> Path | None:
    """The file of an IDX stem in `folder`: plain or gzipped, or None."""
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def is_idx_folder(folder: Path) -> bool:
    """Whether `folder` holds any of the standard MNIST IDX files."""
    return any(find_idx(folder, stem) for stems in MNIST_FILES.values() for stem in stems)


def missing_mnist_files(folder: Path, splits: tuple[str, ...] = SPLITS) -> list[str]:
    """The standard IDX names of `splits` that `folder` lacks."""
    return [stem for split in splits for stem in MNIST_FILES[split] if not find_idx(folder, stem)]


def _missing_files_error(folder: Path, missing: list[str]) -> DatasetError:
    names = ", ".join(f"{stem}[.gz]" for stem in missing)
    hint = ""
    for stem in missing:
        near = sorted(p.name for p in folder.glob(stem + ".*") if p.name != stem + ".gz")
        if near:
            hint = f"; {near[0]} is there: link or copy it as {stem}.gz"
            break
    return DatasetError(
        f"{folder}: missing MNIST files {names}; put the standard IDX files (gzipped or not) "
        f"in {folder}, or point --data at a folder of PNG/JPEG images{hint}"
    )


def read_mnist_split(folder: Path, split: str, data: ImageDataConfig) -> tuple[np.ndarray, ...]:
    """Images uint8 [n, 1, height, width] and labels int64 [n] of one MNIST split."""
    image_stem, label_stem = MNIST_FILES[split]
    missing = missing_mnist_files(folder, (split,))
    if missing:
        raise _missing_files_error(folder, missing)
    image_path, label_path = find_idx(folder, image_stem), find_idx(folder, label_stem)
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DatasetError(f"{image_path}: expected uint8 images [n, rows, columns]")
    if labels.ndim != 1:
        raise DatasetError(f"{label_path}: expected labels [n], found {list(labels.shape)}")
    if len(images) != len(labels):
        raise DatasetError(
            f"{image_path}: {len(images)} images but {label_path.name} has {len(labels)} labels"
        )
    if images.shape[1:] != (data.height, data.width) or data.channels != 1:
        raise DatasetError(
            f"{image_path}: images are {images.shape[1]}x{images.shape[2]} grey, the config "
            f"needs {data.height}x{data.width} with {data.channels} channel(s)"
        )
    return images[:, None], labels.astype(np.int64)


def read_image_file(path: str | Path, data: ImageDataConfig) -> np.ndarray:
    """One PNG/JPEG file, resized to the config's size: uint8 [channels, height, width]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("L" if data.channels == 1 else "RGB")
            if image.size != (data.width, data.height):
                image = image.resize((data.width, data.height), Image.Resampling.LANCZOS)
            pixels = np.asarray(image, dtype=np.uint8)
    except FileNotFoundError as err:
        raise DatasetError(f"{path}: no such image file") from err
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DatasetError(f"{path}: not a readable image ({err})") from err
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def _image_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _label_of(path: Path, root: Path) -> str:
    """The first-level folder an image lies in under `root` ("" for the root itself)."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else ""


@dataclass
class FolderReport:
    """What reading a folder of images found: readable files per split, and the files
    skipped as unreadable with the reason of the first."""

    files: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    first_problem: str = ""


def read_image_folder(
    folder: str | Path, data: ImageDataConfig, seed: int = 0
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str], FolderReport]:
    """Every image of a folder, by split: ({split: (uint8 [n, c, h, w], int64 labels [n])},
    label names, report). Unreadable files are skipped and reported, not fatal."""
    folder = Path(folder)
    split_roots = {"train": folder / "train", "valid": folder / "valid"}
    if not split_roots["valid"].is_dir():
        split_roots["valid"] = folder / "test"
    if all(root.is_dir() for root in split_roots.values()):
        files = {split: (root, _image_files(root)) for split, root in split_roots.items()}
    else:
        everything = _image_files(folder)
        order = np.random.default_rng(seed).permutation(len(everything))
        held_out = np.zeros(len(everything), dtype=bool)
        held_out[order[: round(data.valid_fraction * len(everything))]] = True
        files = {
            "train": (folder, [p for p, h in zip(everything, held_out, strict=True) if not h]),
            "valid": (folder, [p for p, h in zip(everything, held_out, strict=True) if h]),
        }
    if not any(paths for _, paths in files.values()):
        raise DatasetError(
            f"{folder}: no PNG or JPEG images and no MNIST IDX files "
            f"({', '.join(f'{s}[.gz]' for stems in MNIST_FILES.values() for s in stems)})"
        )

    names = sorted({_label_of(p, root) for root, paths in files.values() for p in paths})
    index = {name: i for i, name in enumerate(names)}
    report = FolderReport()
    splits = {}
    for split, (root, paths) in files.items():
        images, labels = [], []
        for path in paths:
            try:
                images.append(read_image_file(path, data))
            except DatasetError as err:
                report.skipped.append(str(path))
                report.first_problem = report.first_problem or str(err)
                continue
            labels.append(index[_label_of(path, root)])
        shape = (0, *data.window_shape)
        splits[split] = (
            np.stack(images) if images else np.zeros(shape, np.uint8),
            np.array(labels, dtype=np.int64),
        )
        report.files[split] = len(images)
    if report.skipped:
        log.warning(
            "%s: skipped %d unreadable image files, e.g. %s",
            folder,
            len(report.skipped),
            report.first_problem,
        )
    return splits, names, report


class ImageDataset:
    """Images and labels by split, in memory as uint8; the Trainer's dataset protocol."""

    def __init__(
        self,
        path: str | Path,
        data: ImageDataConfig,
        splits: dict[str, tuple[np.ndarray, np.ndarray]],
        label_names: list[str],
        source: str,
    ) -> None:
        self.path = Path(path)
        self.data = data
        self.label_names = label_names
        self.source = source  # "idx" or "folder"
        self._images = {
            s: torch.from_numpy(np.ascontiguousarray(i)) for s, (i, _) in splits.items()
        }
        self._labels = {s: torch.from_numpy(np.asarray(lab)) for s, (_, lab) in splits.items()}

    def _split(self, split: str) -> str:
        if split not in self._images:
            known = ", ".join(self._images)
            raise DatasetError(f"{self.path}: no split {split!r} loaded (have: {known})")
        return split

    def num_examples(self, split: str) -> int:
        """How many images a split holds."""
        return len(self._images[self._split(split)])

    def images(self, split: str) -> torch.Tensor:
        """All images of a split as stored: uint8 [n, channels, height, width]."""
        return self._images[self._split(split)]

    def labels(self, split: str) -> torch.Tensor:
        """All labels of a split: long [n]."""
        return self._labels[self._split(split)]

    def batch(self, split: str, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images float [batch, channels, height, width] in [0, 1] and labels long [batch]."""
        split = self._split(split)
        return self._images[split][rows].float() / 255.0, self._labels[split][rows]

    @property
    def num_labels(self) -> int:
        """Distinct labels: 10 for MNIST, the number of label folders for a folder."""
        return len(self.label_names)

    def check_compatible(self, config: Config) -> None:
        """Refuse a config whose images differ from the dataset's, or a conditional model
        with fewer labels than the dataset."""
        data = config.data
        if getattr(data, "kind", None) != "image":
            raise DatasetError(
                f"{self.path}: an image dataset, but config {config.name} reads {data.kind}"
            )
        want = (data.channels, data.height, data.width)
        have = (self.data.channels, self.data.height, self.data.width)
        if want != have:
            raise DatasetError(
                f"{self.path}: images are {have[1]}x{have[2]} with {have[0]} channel(s), "
                f"config {config.name} needs {want[1]}x{want[2]} with {want[0]}"
            )
        model = config.model
        if getattr(model, "conditional", False) and self.num_labels > model.num_labels:
            raise DatasetError(
                f"{self.path}: {self.num_labels} labels, config {config.name} conditions on "
                f"{model.num_labels}"
            )


def load_image_dataset(
    path: str | Path, data: Any, splits: tuple[str, ...] = SPLITS, seed: int = 0
) -> ImageDataset:
    """The images of `path` for `splits` (see the module docstring for the two layouts).

    A folder with some MNIST files but not all raises an error naming the missing files.
    """
    path = Path(path)
    if not isinstance(data, ImageDataConfig):
        raise DatasetError(f"{path}: image data needs an image config, not kind {data.kind!r}")
    if not path.is_dir():
        raise DatasetError(
            f"{path}: no such folder (put the MNIST IDX files or PNG/JPEG images there)"
        )
    if is_idx_folder(path):
        missing = missing_mnist_files(path, splits)
        if missing:
            raise _missing_files_error(path, missing)
        read = {split: read_mnist_split(path, split, data) for split in splits}
        count = 1 + max(
            (int(labels.max()) for _, labels in read.values() if len(labels)), default=0
        )
        return ImageDataset(path, data, read, [str(label) for label in range(count)], "idx")
    if not _image_files(path):
        raise _missing_files_error(path, missing_mnist_files(path, splits))
    read, names, _ = read_image_folder(path, data, seed)
    return ImageDataset(path, data, {s: read[s] for s in splits}, names, "folder")
