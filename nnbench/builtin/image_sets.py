"""Vision data sets as tasks: MNIST, Fashion-MNIST and CIFAR-10, read from their official files.

Nothing is fetched unless the user asks (``nnbench run --download``, which calls
``Task.prepare(True)``). Files live in ``<data folder>/<task>/``, the data folder being
``$NNBENCH_DATA`` or the platform's cache folder (``~/.cache/nnbench`` on Linux), and every file
is checked against the SHA-256 of the official release before it is read.

The standard formats are read directly — gzip-compressed IDX files for MNIST and Fashion-MNIST,
the records of CIFAR-10's *binary* version — rather than through torchvision: the readers are a
few lines of numpy, and torchvision would pin the torch build (its wheels do not import beside
torch 2.13.0 here).

Splits: the official test set is the test split; a stratified 10% of the official training set
(fixed seed) is the validation split, its indices saved under ``<data folder>/splits/`` the first
time so that later processes need not import scikit-learn; inputs are standardized per channel with the statistics of
the remaining training images. Images stay uint8 until that last step, so loading CIFAR-10 peaks
near 0.9 GB and keeps 0.74 GB of float32 (MNIST-sized sets: 0.22 GB) for the life of the process.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import struct
import sys
import tarfile
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from nnbench.builtin.split_cache import saved_arrays
from nnbench.contract.errors import NNBenchError
from nnbench.contract.paths import DATA_ENV_VAR, data_root
from nnbench.contract.specs import Task, TaskData

SPLIT_SEED = 0
VAL_FRACTION = 0.1  # of the official training set
CLASSES = 10

MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/",
                 "http://yann.lecun.com/exdb/mnist/")
FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_RECORD = 1 + 3 * 32 * 32  # a label byte, then the red, green and blue planes, rows first

SHA256 = {
    "mnist/train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "mnist/train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "mnist/t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "mnist/t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    "fashion_mnist/train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "fashion_mnist/train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "fashion_mnist/t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "fashion_mnist/t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    "cifar10/cifar-10-binary.tar.gz": "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
}
"""SHA-256 of each official file, keyed by ``<task folder>/<file name>``."""


class Images(NamedTuple):
    """A data set as published: uint8 images ``(n, channels, height, width)`` and int labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class DataFile:
    """One official file: its name, its size in MB (for messages) and the addresses serving it."""

    name: str
    megabytes: float
    urls: tuple[str, ...]


@dataclass(frozen=True)
class VisionData:
    """A data set kept in ``data_root() / folder``: its official files and the reader of their format."""

    task: str
    folder: str
    files: tuple[DataFile, ...]
    read: Callable[[Path], Images]

    def path(self) -> Path:
        return data_root() / self.folder

    def prepare(self, download: bool) -> None:
        """Make sure every file is present and intact, fetching what is not when ``download`` is set."""
        folder = self.path()
        problems = self.problems(folder)
        if problems and not download:
            raise NNBenchError(self.missing_message(folder, problems))
        for file in problems:
            fetch(file, folder / file.name, SHA256[f"{self.folder}/{file.name}"])

    def problems(self, folder: Path) -> dict[DataFile, str]:
        """Files missing from ``folder`` or damaged there, each with what is wrong with it."""
        found = {}
        for file in self.files:
            path = folder / file.name
            if not path.is_file():
                found[file] = "missing"
                continue
            digest, expected = sha256_of(path), SHA256[f"{self.folder}/{file.name}"]
            if digest != expected:
                found[file] = f"damaged or incomplete (SHA-256 {digest[:12]}…, expected {expected[:12]}…)"
        return found

    def missing_message(self, folder: Path, problems: dict[DataFile, str]) -> str:
        lines = [f"  {file.name}: {reason}; download it from {file.urls[0]}" for file, reason in problems.items()]
        size = sum(file.megabytes for file in problems)
        return (f"task {self.task!r} needs data files in {folder} that are missing or damaged:\n"
                + "\n".join(lines) + "\n"
                f"Run with --download (e.g. `nnbench run --task {self.task} --download`) to fetch them "
                f"(about {size:.0f} MB), or put the files in {folder} yourself "
                f"(set {DATA_ENV_VAR} to keep data sets in another folder).")

    def load(self) -> TaskData:
        """The verified files, split and standardized (cached per data folder)."""
        return _load(self, self.path())


@cache
def _load(data: VisionData, folder: Path) -> TaskData:
    problems = data.problems(folder)
    if problems:
        raise NNBenchError(data.missing_message(folder, problems))
    return split_and_standardize(data.read(folder))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def fetch(file: DataFile, target: Path, sha256: str) -> None:
    """Download ``file`` from the first address that serves it intact, then move it to ``target``."""
    from tqdm import tqdm

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    errors = []
    for url in file.urls:
        try:
            with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out, tqdm(
                total=int(response.headers.get("Content-Length") or 0) or None, unit="B", unit_scale=True,
                desc=file.name, file=sys.stderr, disable=None, leave=False,
            ) as bar:
                while block := response.read(1 << 20):
                    out.write(block)
                    bar.update(len(block))
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{url}: {exc}")
            continue
        digest = sha256_of(partial)
        if digest == sha256:
            os.replace(partial, target)  # a file under its real name is always complete
            return
        errors.append(f"{url}: the download has SHA-256 {digest}, not the official {sha256}")
    partial.unlink(missing_ok=True)
    raise NNBenchError(f"could not download {file.name} into {target.parent}:\n  " + "\n  ".join(errors)
                       + f"\nDownload it yourself from one of these addresses into {target.parent}.")


# -- the formats -----------------------------------------------------------------------------------


def malformed(path: Path, problem: str) -> NNBenchError:
    return NNBenchError(f"{path} is not a valid data file ({problem}); delete it and run with --download "
                        "to fetch it again")


def read_idx(path: Path) -> np.ndarray:
    """A gzip-compressed IDX file of unsigned bytes, in the shape its header declares."""
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as exc:
        raise malformed(path, f"cannot be decompressed: {exc}") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise malformed(path, "no IDX header for unsigned bytes")
    header = 4 + 4 * raw[3]
    if len(raw) < header:
        raise malformed(path, "truncated header")
    shape = struct.unpack(f">{raw[3]}I", raw[4:header])
    data = np.frombuffer(raw, np.uint8, offset=header)
    if data.size != math.prod(shape):
        raise malformed(path, f"the header declares {shape} ({math.prod(shape)} bytes) but {data.size} follow")
    return data.reshape(shape)


def read_mnist_style(folder: Path) -> Images:
    """The four IDX files of MNIST and Fashion-MNIST: 28x28 grey images and labels 0-9."""
    parts = []
    for prefix in ("train", "t10k"):
        images, labels = folder / f"{prefix}-images-idx3-ubyte.gz", folder / f"{prefix}-labels-idx1-ubyte.gz"
        x, y = read_idx(images), read_idx(labels)
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise malformed(images, f"images of shape {x.shape[1:]}, not 28x28")
        if y.shape != (len(x),):
            raise malformed(labels, f"{y.shape} labels for {len(x)} images")
        parts += [x[:, None], _labels(labels, y)]
    return Images(*parts)


def read_cifar10(folder: Path) -> Images:
    """CIFAR-10's binary archive: five training batches and a test batch of 3073-byte records."""
    archive = folder / "cifar-10-binary.tar.gz"
    try:
        with tarfile.open(archive) as tar:
            batches = [_cifar_records(archive, tar, name)
                       for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]]
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise malformed(archive, f"cannot be unpacked: {exc}") from None
    x_train = np.concatenate([x for x, _ in batches[:-1]])
    y_train = np.concatenate([y for _, y in batches[:-1]])
    return Images(x_train, _labels(archive, y_train), batches[-1][0], _labels(archive, batches[-1][1]))


def _cifar_records(archive: Path, tar: tarfile.TarFile, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        member = tar.extractfile(f"cifar-10-batches-bin/{name}")
    except KeyError:
        member = None
    if member is None:
        raise malformed(archive, f"no cifar-10-batches-bin/{name} inside")
    raw = np.frombuffer(member.read(), np.uint8)
    if raw.size % CIFAR10_RECORD:
        raise malformed(archive, f"{name} holds {raw.size} bytes, not whole {CIFAR10_RECORD}-byte records")
    records = raw.reshape(-1, CIFAR10_RECORD)
    return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0]


def _labels(path: Path, y: np.ndarray) -> np.ndarray:
    if y.size and y.max() >= CLASSES:
        raise malformed(path, f"label {y.max()} outside 0-{CLASSES - 1}")
    return y.astype(np.int64)


# -- split and standardization ---------------------------------------------------------------------


def split_and_standardize(images: Images) -> TaskData:
    """Official test set; stratified validation from the official training set; per-channel standardization."""
    x_train, y_train, x_test, y_test = images
    train, val = validation_split(y_train)
    mean, std = channel_statistics(x_train[train])
    return TaskData(_standardize(x_train[train], mean, std), torch.from_numpy(y_train[train]),
                    _standardize(x_train[val], mean, std), torch.from_numpy(y_train[val]),
                    _standardize(x_test, mean, std), torch.from_numpy(y_test))


def validation_split(y_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted indices of the training and the validation images: a stratified
    :data:`VAL_FRACTION` of the official training set, drawn with :data:`SPLIT_SEED`. Saved once
    per set of labels (:func:`~nnbench.builtin.split_cache.saved_arrays`), so that other processes
    read them instead of importing scikit-learn to draw them again."""

    def draw() -> dict[str, np.ndarray]:
        from sklearn.model_selection import train_test_split  # imported when a split is drawn, not at start-up

        train, val = train_test_split(np.arange(len(y_train)), test_size=VAL_FRACTION, random_state=SPLIT_SEED,
                                      stratify=y_train)
        return {"train": np.sort(train), "val": np.sort(val)}

    labels = np.ascontiguousarray(y_train)
    inputs = f"{VAL_FRACTION}|{SPLIT_SEED}|{labels.dtype.str}|{labels.shape}|".encode() + labels.tobytes()

    def partition(split: dict[str, np.ndarray]) -> bool:  # else drawn again rather than trusted
        train, val = split["train"], split["val"]
        sorted_indices = all(part.ndim == 1 and part.dtype.kind in "iu" and bool(np.all(np.diff(part) > 0))
                             for part in (train, val))  # as drawn: integers, ascending, each once
        return (sorted_indices and len(train) + len(val) == len(labels)
                and np.array_equal(np.union1d(train, val), np.arange(len(labels))))

    split = saved_arrays("validation-indices", ("train", "val"), inputs, draw, __name__, partition)
    return split["train"], split["val"]


def channel_statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each channel of uint8 images, from a histogram of pixel values
    (exact, and without a float copy of the images)."""
    values = np.arange(256, dtype=np.float64)
    means, stds = [], []
    for channel in range(x.shape[1]):
        counts = np.bincount(x[:, channel].ravel(), minlength=256)
        mean = counts @ values / counts.sum()
        means.append(mean)
        stds.append(math.sqrt(counts @ (values - mean) ** 2 / counts.sum()) or 1.0)
    return np.array(means), np.array(stds)


def _standardize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    out = torch.from_numpy(x.astype(np.float32))
    shape = (1, -1, 1, 1)
    return out.sub_(torch.as_tensor(mean, dtype=torch.float32).view(shape)).div_(
        torch.as_tensor(std, dtype=torch.float32).view(shape))


# -- the tasks -------------------------------------------------------------------------------------


def idx_files(mirrors: tuple[str, ...], megabytes: tuple[float, float, float, float]) -> tuple[DataFile, ...]:
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz")
    return tuple(DataFile(name, size, tuple(mirror + name for mirror in mirrors))
                 for name, size in zip(names, megabytes, strict=True))


MNIST = VisionData("mnist", "mnist", idx_files(MNIST_MIRRORS, (9.9, 0.03, 1.6, 0.005)), read_mnist_style)
FASHION_MNIST = VisionData("fashion_mnist", "fashion_mnist", idx_files(FASHION_MIRRORS, (26.4, 0.03, 4.4, 0.005)),
                           read_mnist_style)
CIFAR10 = VisionData("cifar10", "cifar10", (DataFile("cifar-10-binary.tar.gz", 170.1, (CIFAR10_URL,)),),
                     read_cifar10)


def vision_task(data: VisionData, shape: tuple[int, int, int], description: str) -> Task:
    return Task(data.task, "multiclass", "image", shape, data.load, description, num_classes=CLASSES,
                views=("sequence",), prepare=data.prepare)


TASKS = (
    vision_task(MNIST, (1, 28, 28), "MNIST handwritten digits, 28x28 grey (or 28 rows); 60k/10k, needs --download"),
    vision_task(FASHION_MNIST, (1, 28, 28),
                "Zalando clothing photos, 28x28 grey (or 28 rows); 60k/10k, needs --download"),
    vision_task(CIFAR10, (3, 32, 32), "CIFAR-10 objects, 32x32 colour (or 32 rows); 50k/10k, needs --download"),
)
