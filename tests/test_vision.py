"""MNIST, Fashion-MNIST and CIFAR-10 on small files written in the official formats."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nnbench.builtin import image_sets as vision
from nnbench.contract.errors import NNBenchError
from nnbench.testing import check_task
from nnbench.training.trainer import to_view

TASKS = {task.name: task for task in vision.TASKS}
DATA = {"mnist": vision.MNIST, "fashion_mnist": vision.FASHION_MNIST, "cifar10": vision.CIFAR10}


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NNBENCH_DATA", str(tmp_path))
    return tmp_path


def idx_bytes(array: np.ndarray) -> bytes:
    header = b"\0\0\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def sample_images(n: int, shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8), np.arange(n) % 10


def mnist_files(n_train: int = 200, n_test: int = 30) -> tuple[dict[str, bytes], tuple[np.ndarray, ...]]:
    x_train, y_train = sample_images(n_train, (28, 28), seed=1)
    x_test, y_test = sample_images(n_test, (28, 28), seed=2)
    files = {"train-images-idx3-ubyte.gz": idx_bytes(x_train), "train-labels-idx1-ubyte.gz": idx_bytes(y_train),
             "t10k-images-idx3-ubyte.gz": idx_bytes(x_test), "t10k-labels-idx1-ubyte.gz": idx_bytes(y_test)}
    return files, (x_train, y_train, x_test, y_test)


def cifar_records(x: np.ndarray, y: np.ndarray) -> bytes:
    return np.concatenate([y[:, None].astype(np.uint8), x.reshape(len(x), -1)], axis=1).tobytes()


def cifar_files(per_batch: int = 40, n_test: int = 30) -> tuple[dict[str, bytes], tuple[np.ndarray, ...]]:
    x_train, y_train = sample_images(5 * per_batch, (3, 32, 32), seed=3)
    x_test, y_test = sample_images(n_test, (3, 32, 32), seed=4)
    members = {f"data_batch_{i + 1}.bin": cifar_records(x_train[i * per_batch:(i + 1) * per_batch],
                                                        y_train[i * per_batch:(i + 1) * per_batch]) for i in range(5)}
    members["test_batch.bin"] = cifar_records(x_test, y_test)
    return {"cifar-10-binary.tar.gz": tar_gz(members)}, (x_train, y_train, x_test, y_test)


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def trust(monkeypatch: pytest.MonkeyPatch, folder: str, files: dict[str, bytes]) -> None:
    """Make the small fixture files the 'official' ones."""
    for name, content in files.items():
        monkeypatch.setitem(vision.SHA256, f"{folder}/{name}", hashlib.sha256(content).hexdigest())


def install(root: Path, monkeypatch: pytest.MonkeyPatch, folder: str, files: dict[str, bytes]) -> None:
    (root / folder).mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (root / folder / name).write_bytes(content)
    trust(monkeypatch, folder, files)


def to_pixels(x: torch.Tensor, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Undo the per-channel standardization; the result must be whole pixel values again."""
    pixels = x.double().numpy() * std.reshape(1, -1, 1, 1) + mean.reshape(1, -1, 1, 1)
    assert np.allclose(pixels, pixels.round(), atol=1e-3)
    return pixels.round().astype(np.uint8)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_official_files_load_as_a_conforming_task(name: str, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, (x_train, y_train, x_test, y_test) = cifar_files() if name == "cifar10" else mnist_files()
    if name != "cifar10":
        x_train, x_test = x_train[:, None], x_test[:, None]
    install(data_root, monkeypatch, name, files)
    task = TASKS[name]
    task.prepare(False)
    check_task(task)
    data = task.load()
    # Standardized per channel with the training split's statistics, shared by every split.
    axes = (0, 2, 3)
    assert torch.allclose(data.x_train.mean(dim=axes), torch.zeros(x_train.shape[1]), atol=1e-4)
    assert torch.allclose(data.x_train.std(dim=axes, unbiased=False), torch.ones(x_train.shape[1]), atol=1e-4)
    std = x_test.std(axis=axes) / data.x_test.double().numpy().std(axis=axes)
    mean = x_test.mean(axis=axes) - std * data.x_test.double().numpy().mean(axis=axes)
    # The test split is the official test set, in its order.
    assert np.array_equal(to_pixels(data.x_test, mean, std), x_test)
    assert torch.equal(data.y_test, torch.as_tensor(y_test))
    # Training and validation split the official training set; validation is a stratified 10%.
    label_of = {image.tobytes(): label for image, label in zip(x_train, y_train, strict=True)}
    seen = []
    for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val)):
        for image, label in zip(to_pixels(x, mean, std), y.tolist(), strict=True):
            assert label_of[image.tobytes()] == label
            seen.append(image.tobytes())
    assert sorted(seen) == sorted(label_of)
    assert torch.bincount(data.y_val).tolist() == [len(x_train) // 100] * 10
    rows = to_view(data.x_test, "image", "sequence")
    assert rows.shape == (len(x_test), task.input_shape[1], task.input_shape[0] * task.input_shape[2])


def test_missing_data_says_what_to_download_and_where(data_root: Path) -> None:
    for task in TASKS.values():
        with pytest.raises(NNBenchError) as info:
            task.prepare(False)
        message = str(info.value)
        folder = data_root / DATA[task.name].folder
        assert f"task {task.name!r} needs data files in {folder} that are missing or damaged" in message
        for file in DATA[task.name].files:
            assert f"{file.name}: missing; download it from {file.urls[0]}" in message
        assert "--download" in message and "NNBENCH_DATA" in message
        with pytest.raises(NNBenchError, match="that are missing or damaged"):
            task.load()
    assert not any(data_root.iterdir())  # nothing was fetched or created


def test_data_folder_defaults_to_the_platform_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs

    monkeypatch.delenv("NNBENCH_DATA", raising=False)
    assert vision.data_root() == Path(platformdirs.user_cache_dir("nnbench"))
    monkeypatch.setenv("NNBENCH_DATA", "~/datasets")
    assert vision.data_root() == Path.home() / "datasets"


def test_damaged_file_is_named(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, _ = mnist_files()
    install(data_root, monkeypatch, "mnist", files)
    (data_root / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(files["t10k-labels-idx1-ubyte.gz"][:-5])
    with pytest.raises(NNBenchError, match=r"t10k-labels-idx1-ubyte.gz: damaged or incomplete \(SHA-256"):
        TASKS["mnist"].prepare(False)


@pytest.mark.parametrize(("name", "damage", "message"), [
    ("mnist", lambda f: {**f, "t10k-images-idx3-ubyte.gz": f["t10k-images-idx3-ubyte.gz"][:-40]},
     "cannot be decompressed"),
    ("mnist", lambda f: {**f, "train-images-idx3-ubyte.gz": gzip.compress(gzip.decompress(
        f["train-images-idx3-ubyte.gz"])[:-100])}, r"the header declares \(200, 28, 28\)"),
    ("mnist", lambda f: {**f, "train-labels-idx1-ubyte.gz": idx_bytes(np.arange(100))},
     r"\(100,\) labels for 200 images"),
    ("cifar10", lambda f: {"cifar-10-binary.tar.gz": tar_gz({"data_batch_1.bin": b"\0" * 3073})},
     "no cifar-10-batches-bin/data_batch_2.bin inside"),
    ("cifar10", lambda f: {"cifar-10-binary.tar.gz": tar_gz({f"data_batch_{i}.bin": b"\0" * 3000 for i in range(1, 6)}
                                                          | {"test_batch.bin": b""})},
     "not whole 3073-byte records"),
    ("cifar10", lambda f: {"cifar-10-binary.tar.gz": f["cifar-10-binary.tar.gz"][:5000]}, "cannot be unpacked"),
])
def test_truncated_or_malformed_files_are_named(name: str, damage: Any, message: str, data_root: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    files, _ = cifar_files() if name == "cifar10" else mnist_files()
    install(data_root, monkeypatch, name, damage(files))  # checksums that match the damaged files
    with pytest.raises(NNBenchError, match=f"is not a valid data file .*{message}"):
        TASKS[name].load()


class FakeResponse(io.BytesIO):
    def __init__(self, content: bytes) -> None:
        super().__init__(content)
        self.headers = {"Content-Length": str(len(content))}


def serve(monkeypatch: pytest.MonkeyPatch, content: dict[str, bytes]) -> list[str]:
    """Answer urlopen from ``content`` (URL -> bytes); other URLs fail as if offline."""
    asked: list[str] = []

    def urlopen(url: str, timeout: float | None = None) -> FakeResponse:
        asked.append(url)
        if url not in content:
            raise urllib.error.URLError("no network in this test")
        return FakeResponse(content[url])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return asked


def test_download_tries_each_mirror_and_verifies(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, _ = mnist_files()
    trust(monkeypatch, "mnist", files)
    second_mirror = {file.urls[1]: files[file.name] for file in vision.MNIST.files}
    asked = serve(monkeypatch, second_mirror)
    TASKS["mnist"].prepare(True)
    assert len(asked) == 8  # each file: the first mirror fails, the second serves it
    assert sorted(p.name for p in (data_root / "mnist").iterdir()) == sorted(files)
    assert len(TASKS["mnist"].load().x_test) == 30
    TASKS["mnist"].prepare(True)
    assert len(asked) == 8  # intact files are not fetched again


def test_download_with_a_wrong_checksum_leaves_nothing(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, _ = cifar_files()
    serve(monkeypatch, {vision.CIFAR10_URL: files["cifar-10-binary.tar.gz"]})  # not the official bytes
    with pytest.raises(NNBenchError) as info:
        TASKS["cifar10"].prepare(True)
    assert "could not download cifar-10-binary.tar.gz" in str(info.value)
    assert "not the official" in str(info.value)
    assert not any((data_root / "cifar10").iterdir())


def test_run_with_download_fetches_then_trains_images_and_rows(data_root: Path, monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    from click.testing import CliRunner

    from nnbench.cli import cli

    files, _ = mnist_files()
    trust(monkeypatch, "mnist", files)
    serve(monkeypatch, {file.urls[0]: files[file.name] for file in vision.MNIST.files})
    monkeypatch.chdir(tmp_path)
    args = ["run", "--task", "mnist", "--arch", "fnn,lstm", "--activation", "relu", "--optimizer", "adam",
            "--seeds", "1", "--epochs", "1", "--quiet", "--store", str(tmp_path / "mnist.db")]
    offline = CliRunner().invoke(cli, args)
    assert offline.exit_code == 1 and "--download" in offline.output
    result = CliRunner().invoke(cli, [*args, "--download"])
    assert result.exit_code == 0, result.output
    assert "fnn/relu" in result.output and "lstm/relu" in result.output  # the LSTM reads 28 rows
