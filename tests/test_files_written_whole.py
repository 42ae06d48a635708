"""Reports and exports are written whole or not at all: a full disk never costs the file already there.

The full disk is simulated by making the write (or the flush to disk) raise ``OSError(ENOSPC)`` after
part of the file was written, as a real full disk does."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from nnbench import files
from nnbench.cli import cli
from nnbench.contract.errors import NNBenchError
from nnbench.reporting import Report

FULL = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def fills_up(write: Callable[..., Any]) -> Callable[..., Any]:
    """``write`` (a ``Path.write_text`` or a ``DataFrame.to_csv``) that writes half its output to the
    file, then finds the disk full."""

    def half_then_full(target: Any, *args: Any, **kwargs: Any) -> Any:
        text = args[0] if args else ""
        if isinstance(target, Path) and isinstance(text, str):
            with open(target, "w", encoding="utf-8") as out:
                out.write(text[: len(text) // 2])
        else:  # DataFrame.to_csv(path): the first rows, then no more room
            write(target.head(max(1, len(target) // 2)), args[0], index=False)
        raise FULL

    return half_then_full


@pytest.fixture
def old_report(tmp_path: Path) -> Iterator[tuple[Path, bytes]]:
    path = tmp_path / "reports" / "run" / "index.html"
    path.parent.mkdir(parents=True)
    whole = Report("<html>" + "the complete earlier report " * 2000 + "</html>").html.encode()
    path.write_bytes(whole)
    path.chmod(0o644)
    yield path, whole


def test_a_full_disk_while_a_report_is_rewritten_keeps_the_earlier_report(
        old_report: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    path, whole = old_report
    monkeypatch.setattr(Path, "write_text", fills_up(Path.write_text))
    with pytest.raises(NNBenchError) as info:
        Report("<html>" + "a new report " * 5000 + "</html>").save(path)
    message = str(info.value)
    assert "\n" not in message
    assert f"cannot write the report to {path}: No space left on device" in message
    assert "the report already there is kept" in message
    assert path.read_bytes() == whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["index.html"]  # no partial file left behind


def test_a_disk_that_fills_only_when_the_report_is_flushed_keeps_the_earlier_report(
        old_report: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    path, whole = old_report

    def full_on_flush(descriptor: int) -> None:
        raise FULL

    monkeypatch.setattr(files.os, "fsync", full_on_flush)
    with pytest.raises(NNBenchError, match="No space left on device; the report already there is kept"):
        Report("<html>new</html>").save(path)
    assert path.read_bytes() == whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["index.html"]


def test_a_report_that_is_written_replaces_the_earlier_one_whole_with_its_permissions(
        old_report: tuple[Path, bytes]) -> None:
    path, _ = old_report
    link = path.parent / "latest.html"
    link.symlink_to(path)
    Report("<html>new report</html>").save(link)
    assert path.read_text() == "<html>new report</html>"
    assert link.is_symlink()  # the link still points at the report it named
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["index.html", "latest.html"]


def test_a_full_disk_in_the_middle_of_a_report_command_is_one_line_and_keeps_the_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    ran = runner.invoke(cli, ["run", "--task", "moons", "--arch", "fnn", "--activation", "relu", "--optimizer", "adam",
                              "--seeds", "2", "--epochs", "1", "-q", "--no-report"], catch_exceptions=False)
    assert ran.exit_code == 0, ran.output
    first = runner.invoke(cli, ["report", "-o", "report.html"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    whole = (tmp_path / "report.html").read_bytes()
    monkeypatch.setattr(Path, "write_text", fills_up(Path.write_text))
    again = runner.invoke(cli, ["report", "-o", "report.html"], catch_exceptions=False)
    assert again.exit_code == 1 and "Traceback" not in again.output
    (line,) = [line for line in again.output.splitlines() if line.strip()]
    assert line.startswith("Error: cannot write the report to report.html: No space left on device")
    assert (tmp_path / "report.html").read_bytes() == whole
    assert not list(tmp_path.glob(".*.partial"))  # no partial file left behind


def test_a_full_disk_while_exporting_keeps_the_earlier_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    runner.invoke(cli, ["run", "--task", "moons", "--arch", "fnn", "--activation", "relu,tanh", "--optimizer", "adam",
                        "--seeds", "2", "--epochs", "1", "-q", "--no-report"], catch_exceptions=False)
    assert runner.invoke(cli, ["export", "-o", "out.csv"], catch_exceptions=False).exit_code == 0
    whole = (tmp_path / "out.csv").read_bytes()
    monkeypatch.setattr(pd.DataFrame, "to_csv", fills_up(pd.DataFrame.to_csv))
    again = runner.invoke(cli, ["export", "-o", "out.csv"], catch_exceptions=False)
    assert again.exit_code == 1
    assert again.output.strip() == ("Error: cannot write out.csv: No space left on device; the file already there "
                                    "is kept")
    assert (tmp_path / "out.csv").read_bytes() == whole
    assert not list(tmp_path.glob(".*.partial"))


def test_an_abandoned_partial_file_is_swept_by_the_next_writer_and_a_fresh_one_kept(tmp_path: Path) -> None:
    import time

    target = tmp_path / "index.html"
    abandoned, fresh = (tmp_path / f".index.html.{tag}.partial" for tag in ("abandoned", "fresh"))
    for partial in (abandoned, fresh):
        partial.write_text("half")
    old = time.time() - files.ABANDONED_SECONDS - 60
    os.utime(abandoned, (old, old))
    files.write_text_whole(target, "whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, fresh.name])
