"""Third-party plugins are imported in a child process first, within a time limit.

A plugin runs its own code when it is imported. One that ends the process there (``os._exit``) would
end every nnbench command with it, silently and with the status it chose; one that never returns
would hang every command, ``nnbench list`` included. Neither can be stopped from inside the process,
so before nnbench imports an entry point it has not seen, it imports it in a child process (one
child for all of them, the same order) and watches: an entry point whose import ends the child, or
does not finish within :data:`TIMEOUT_VAR` seconds (default :data:`DEFAULT_TIMEOUT`), is not
imported here and is named in one warning line. One that merely raises is imported here as before,
where its error is named as usual.

The verdict is remembered per entry point, keyed by everything that would change it (the entry
point, its distribution's version, the files and modification times of the modules on its path,
the interpreter, nnbench's version), in ``plugin-imports.json`` under nnbench's data folder. So the
child runs once after a plugin is installed or changed, and later commands pay only a few ``stat``
calls. A hang is checked again when the limit is raised above the one it was found with.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from importlib.machinery import PathFinder
from importlib.metadata import EntryPoint
from pathlib import Path

from nnbench.contract.errors import NNBenchError
from nnbench.contract.paths import data_root
from nnbench.contract.release import VERSION
from nnbench.files import write_text_whole

TIMEOUT_VAR = "NNBENCH_PLUGIN_TIMEOUT"
DEFAULT_TIMEOUT = 30.0
CACHE_NAME = "plugin-imports.json"
MAX_REMEMBERED = 500  # verdicts kept; the oldest go first

# The child: read the entry points and the parent's import path, import each in turn, and say when
# each starts and ends on the descriptor it was given. Exceptions are the in-process import's to
# report; the child leaves without running anything a plugin registered to run at exit.
_CHILD = """
import json, os, sys
from importlib.metadata import EntryPoint
out = int(sys.argv[1])
job = json.loads(sys.stdin.read())
sys.path[:] = job["path"]
for i, (name, value, group) in enumerate(job["points"]):
    os.write(out, b"start %d\\n" % i)
    try:
        EntryPoint(name, value, group).load()
    except BaseException:
        pass
    os.write(out, b"done %d\\n" % i)
os.write(out, b"end\\n")
os._exit(0)
"""


@dataclass(frozen=True)
class Verdict:
    """Whether an entry point may be imported in nnbench's process; ``reason`` says why not."""

    safe: bool
    reason: str = ""
    timeout: float | None = None  # the limit a hang was found with


def import_timeout() -> float:
    """The time limit of one plugin's import, from :data:`TIMEOUT_VAR` (seconds > 0)."""
    text = os.environ.get(TIMEOUT_VAR, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value > 0 and value < float("inf")):

        raise NNBenchError(f"{TIMEOUT_VAR} must be a number of seconds > 0, not {text!r}")
    return value


def import_verdicts(points: Sequence[EntryPoint], timeout: float | None = None) -> dict[str, Verdict]:
    """A verdict for each of ``points`` (by name): remembered, or found now in a child process."""
    timeout = import_timeout() if timeout is None else timeout
    keys = {ep.name: fingerprint(ep) for ep in points}
    remembered = _read_cache()
    verdicts: dict[str, Verdict] = {}
    for ep in points:
        found = remembered.get(keys[ep.name])
        if found is not None and (found.safe or found.timeout is None or found.timeout >= timeout):
            verdicts[ep.name] = found if found.safe else replace(
                found, reason=f"{found.reason}; remembered from an earlier check, made again once the plugin changes")
    unknown = [ep for ep in points if ep.name not in verdicts]
    if unknown:
        fresh = probe_imports(unknown, timeout)
        verdicts.update(fresh)
        if fresh:
            _write_cache(remembered, {keys[name]: verdict for name, verdict in fresh.items()})
    return verdicts


def fingerprint(ep: EntryPoint) -> str:
    """A digest of everything that decides what importing ``ep`` does, short of running it."""
    dist = ep.dist
    parts: list[object] = [sys.executable, sys.version, VERSION, ep.group, ep.name, ep.value,
                           dist.name if dist else None, dist.version if dist else None]
    locations: list[str] | None = None
    module = ep.value.partition(":")[0].strip()
    for depth, part in enumerate(module.split(".")):
        spec = PathFinder.find_spec(part, locations) if depth == 0 or locations else None
        if spec is None:  # not found without importing its parent (a namespace built at import time)
            parts.append(None)
            break
        origin = spec.origin if spec.has_location else None
        stat = _stat(origin)
        parts.append([origin, stat])
        locations = list(spec.submodule_search_locations or [])
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def _stat(path: str | None) -> list[int] | None:
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_mtime_ns, info.st_size]


def probe_imports(points: Sequence[EntryPoint], timeout: float) -> dict[str, Verdict]:
    """Import ``points`` in child processes, in order; a verdict for each one the children reached.

    A child that ends or overruns ``timeout`` on one entry point names it; the entry points after it
    go to a new child. An entry point left without a verdict (the child could not start) is left to
    be imported in this process, unchecked."""
    verdicts: dict[str, Verdict] = {}
    rest = list(points)
    while rest:
        reached, stopped_at = _probe_once(rest, timeout)
        for ep in rest[:reached]:
            verdicts[ep.name] = Verdict(True)
        if stopped_at is None:
            break
        if reached >= len(rest):
            break
        verdicts[rest[reached].name] = stopped_at
        rest = rest[reached + 1:]
    return verdicts


def _probe_once(points: Sequence[EntryPoint], timeout: float) -> tuple[int, Verdict | None]:
    """Import ``points`` in one child. Returns how many it imported (or saw raise) and, when it
    stopped on the next one, the verdict on that one; ``None`` where the child finished, or stopped
    before it began to import (it could not start: those left are not checked)."""
    read_end, write_end = os.pipe()
    job = json.dumps({"path": sys.path, "points": [[ep.name, ep.value, ep.group] for ep in points]})
    try:
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(write_end)], stdin=subprocess.PIPE,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(write_end,),
                                 start_new_session=True)  # a group of its own, ended with whatever it started
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return 0, None
    os.close(write_end)
    progress = _Progress()
    try:
        with contextlib.suppress(OSError):  # a child that died at once closed its end
            assert child.stdin is not None
            child.stdin.write(job.encode())
            child.stdin.close()
        deadline = time.monotonic() + timeout
        while not progress.ended:
            left = deadline - time.monotonic()
            if left <= 0:
                if progress.started < progress.done:
                    return progress.done, None
                return progress.done, _hung(timeout)
            readable, _, _ = select.select([read_end], [], [], min(left, 0.25))
            if readable:
                chunk = os.read(read_end, 4096)
                if progress.read(chunk):
                    deadline = time.monotonic() + timeout  # each import has the whole limit
                if not chunk:  # every writer is gone: the child ended
                    break
            elif child.poll() is not None:  # ended, and whatever it wrote was read
                break
        if progress.ended or progress.started < progress.done:
            return progress.done, None
        try:
            status = child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:  # it closed its end of the pipe and went on
            return progress.done, _hung(timeout)
        return progress.done, Verdict(False, f"its import ended the process ({_describe_status(status)})")
    finally:
        os.close(read_end)
        if child.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def _hung(timeout: float) -> Verdict:
    return Verdict(False, f"its import did not finish within {timeout:g} s ({TIMEOUT_VAR} sets the limit)", timeout)


class _Progress:
    """What a child said so far: the import it started last, how many finished, whether all did."""

    def __init__(self) -> None:
        self.started, self.done, self.ended, self.buffer = -1, 0, False, b""

    def read(self, chunk: bytes) -> bool:
        """Take ``chunk`` in; whether an import started in it."""
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        began = False
        for line in lines:
            word, _, number = line.decode(errors="replace").partition(" ")
            if word == "start":
                self.started, began = int(number), True
            elif word == "done":
                self.done = int(number) + 1
            elif word == "end":
                self.ended = True
        return began


def _describe_status(status: int) -> str:
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def _cache_path() -> Path:
    return data_root() / CACHE_NAME


def _read_cache() -> dict[str, Verdict]:
    try:
        saved = json.loads(_cache_path().read_text(encoding="utf-8"))
        return {key: Verdict(**value) for key, value in saved.items()}
    except (OSError, ValueError, TypeError, AttributeError):  # none yet, or unreadable: checked again
        return {}


def _write_cache(remembered: dict[str, Verdict], fresh: dict[str, Verdict]) -> None:
    merged = {**{k: v for k, v in remembered.items() if k not in fresh}, **fresh}  # newest last
    kept = dict(list(merged.items())[-MAX_REMEMBERED:])
    path = _cache_path()
    with contextlib.suppress(OSError):  # an unwritable folder costs a child process per command, no more
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_whole(path, json.dumps({k: asdict(v) for k, v in kept.items()}, indent=0))
