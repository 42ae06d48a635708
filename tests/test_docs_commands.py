"""Every command in README.md and docs/*.md runs as written.

The rules are stated for readers in docs/testing.md ("Every documented command runs"): each page's commands
(the lines of bash blocks and the ``$`` lines of console blocks) run in the order written, in a temporary
folder of the page's own; ``nnbench`` in this process through click's CliRunner, ``python`` as a subprocess,
the Python blocks of a page as a notebook would run them. Trainings are cut to small settings, a command
that needs a GPU or a cluster runs as a dry run, pip and tox commands are checked against the repository,
and a line of any other program fails unless NOT_RUN says why it cannot run here.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tomllib
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import ray
import torch
from click.testing import CliRunner
from local_cluster import LocalRayCluster, cluster_env
from packaging.requirements import Requirement
from packaging.version import Version

import nnbench
from nnbench.cli import cli
from nnbench.contract.specs import Device
from nnbench.loading import plugins

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
TOX_INI = (ROOT / "tox.ini").read_text()

SMALL_EPOCHS, SMALL_SEEDS = 1, 1
"""A ``nnbench run`` that trains trains at most this many epochs of at most this many seeds."""
RACE_SEEDS = 3
"""The fewest seeds ``nnbench run --race`` takes."""

PLACEHOLDERS = {"RUN": -1, "CANDIDATE": -1, "RUN2": -1, "BASELINE": -2, "RUN1": -2}
"""Words that stand for run ids -> which run of the page's store, in the order the runs started."""

NOT_RUN = {
    "mutmut": "mutation testing takes minutes to hours a module (docs/testing.md runs it through tox)",
    "grep": "reads the output of a mutation-testing run",
    "sbatch": "submits a SLURM job; tests/test_slurm.py runs examples/slurm.sbatch with stand-ins for SLURM's commands",
}
"""Programs other than nnbench and python that the docs may name, and why the test does not run them."""


@dataclass(frozen=True)
class Small:
    """How a benchmark script runs small: arguments appended (argparse keeps the last value), module
    constants replaced, and a line its output must hold."""

    arguments: tuple[str, ...]
    prints: str
    constants: dict[str, Any] = field(default_factory=dict)


SMALL_SETTINGS = {
    "benchmarks/suite.py": Small(("--only", "help", "--repeats", "1"), r"figures meet their targets"),
    "benchmarks/bench_workers.py": Small(("--only", "startup", "--repeats", "1"),
                                         r"a worker forked from the preloaded server, start to ready"),
    "benchmarks/bench_grid.py": Small(("--repeats", "1"), r"1,000-trial grid, .* 4 trials stored",
                                      {"GRID": ["--task", "moons", "--arch", "fnn", "--activation", "relu,tanh",
                                                "--optimizer", "adam", "--seeds", "2", "--epochs", "2",
                                                "--no-report"]}),
    "benchmarks/bench_stacking.py": Small(("--only", "fnn", "--seeds", "2", "--repeats", "1"),
                                          r"fnn\s+digits\s+[\d.]+x"),
    "benchmarks/bench_report.py": Small((), r"build_report: [\d.]+ s for 24 trials",
                                        {"TASKS": {"spirals": "accuracy"}, "ACTIVATIONS": ["act00", "act01"],
                                         "OPTIMIZERS": ["sgd", "adam"], "LRS": [0.01], "SEEDS": [0, 1, 2]}),
    "benchmarks/gpu_check.py": Small(("--repeats", "1"), r"trials at once"),
    "benchmarks/bench_verdicts.py": Small(("--reps", "10", "--real", "--twins", "2", "--real-seeds", "2",
                                           "--epochs", "1", "--markdown"), r"all 2 twins as one axis: \d+ false"),
    "benchmarks/bench_race.py": Small(("--grids", "20"), r"\| null \| 20 \|",
                                      {"REAL_GRIDS": {"tiny": ["--task", "circles", "--arch", "fnn", "--activation",
                                                               "relu,identity", "--optimizer", "adam", "--seeds", "3",
                                                               "--epochs", "1"]}}),
    "benchmarks/bench_phases.py": Small(("--repeats", "1"), r"training steps \(the trials' stored train_time\)"),
    "benchmarks/bench_dispatch.py": Small(("--trials", "20,100", "--slots", "1"),
                                          r"dispatch: at most [\d.]+ ms of driver CPU a trial"),
}
"""Small settings for each benchmark script the docs name. A script's exit status says whether a speed
target was met, which a small run on a busy machine need not; what is asserted is that it ran to its figures."""

RUN_SCRIPT = """\
import importlib.util, json, sys
path, constants = sys.argv[1], json.loads(sys.argv[2])
sys.argv = [path, *sys.argv[3:]]
sys.path.insert(0, str(__import__("pathlib").Path(path).parent))
spec = importlib.util.spec_from_file_location("benchmark", path)
module = sys.modules["benchmark"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
for name, value in constants.items():
    setattr(module, name, value)
sys.exit(module.main())
"""


# -- reading the pages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A fenced code block: its page, first line, language, whether it sits in a list item, body and the
    paragraph before it."""

    page: Path
    line: int
    language: str
    indented: bool
    body: str
    before: str

    @property
    def where(self) -> str:
        name = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page.name
        return f"{name}:{self.line}"

    @property
    def file_name(self) -> str | None:
        """The file this block is, when the paragraph before it names one (`` `name.ext`: `` or ``,``)."""
        found = re.search(r"^`([\w./-]+\.\w+)`[,:]", self.before, flags=re.MULTILINE)
        return found.group(1) if found else None


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in re.finditer(r"^( *)```(\w*)[^\n]*\n(.*?)^\1```[ \t]*$", text, flags=re.MULTILINE | re.DOTALL):
        start = text.count("\n", 0, match.start()) + 1
        paragraph = text[:match.start()].rstrip("\n").split("\n\n")[-1]
        body = "\n".join(line[len(match.group(1)):] for line in match.group(3).splitlines())
        found.append(Block(page, start, match.group(2), bool(match.group(1)), body, paragraph))
    return found


@dataclass(frozen=True)
class Command:
    """One command line of a page, with what its block shows it prints (console blocks)."""

    block: Block
    line: str
    expected: tuple[str, ...] = ()


@dataclass(frozen=True)
class Program:
    """Python blocks of a page that run as one notebook, or one block that is a file to write."""

    block: Block
    code: str
    file_name: str | None = None


def steps(page: Path) -> list[Command | Program]:
    """What the page asks a reader to do, in its order."""
    found: list[Command | Program] = []
    for block in blocks(page):
        if block.language == "bash" and not (block.file_name and (ROOT / block.file_name).is_file()):
            found += [Command(block, line) for line in command_lines(block.body)]
        elif block.language == "console":
            found += console_commands(block)
        elif block.file_name and not block.indented:
            found.append(Program(block, block.body, block.file_name))
        elif block.language == "python" and not block.indented:
            previous = found[-1] if found else None
            if isinstance(previous, Program) and previous.file_name is None:
                found[-1] = Program(previous.block, previous.code + "\n" + block.body)
            else:
                found.append(Program(block, block.body))
    return found


def command_lines(body: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments and blank lines left out."""
    joined = re.sub(r"\s*\\\n\s*", " ", body)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def console_commands(block: Block) -> list[Command]:
    commands: list[Command] = []
    for line in block.body.splitlines():
        if line.startswith("$ "):
            commands.append(Command(block, line[2:].strip()))
        elif commands:
            last = commands[-1]
            commands[-1] = Command(last.block, last.line, (*last.expected, line))
    return commands


# -- running them ------------------------------------------------------------------------------------


class StandInAccelerators:
    """Devices a command asks for that this machine lacks, registered for its dry run only."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    @nnbench.hookimpl
    def register_devices(self, register: Any) -> None:
        for name in self.names:
            register(Device(name, "a stand-in for a dry run"))


@contextmanager
def registered(plugin: Any, name: str) -> Iterator[None]:
    """Every plugin manager built inside the block registers ``plugin`` too (as nnbench.testing's
    ``nnbench_plugin`` does for a whole test)."""
    with pytest.MonkeyPatch.context() as patch:
        base = plugins.PluginManager

        class WithPlugin(base):  # type: ignore[misc, valid-type]
            def check_pending(self) -> None:
                if not self.is_registered(plugin):
                    self.register(plugin, name=name)
                super().check_pending()

        patch.setattr(plugins, "PluginManager", WithPlugin)
        yield


def missing_accelerators(words: list[str]) -> list[str]:
    """The accelerators a command's ``--device`` names that this machine does not have."""
    wanted = [name for option, value in zip(words, words[1:], strict=False) if option == "--device"
              for name in value.split(",")]
    missing = []
    for name in wanted:
        if name.startswith("cuda") and not torch.cuda.is_available():
            missing.append("cuda:0" if name == "cuda" else name)
        elif name == "mps" and not torch.backends.mps.is_available():
            missing.append("mps")
    return missing


def option_values(words: list[str], option: str) -> list[str]:
    return [value for name, value in zip(words, words[1:], strict=False) if name == option]


def small_run(words: list[str]) -> list[str]:
    """``nnbench run`` arguments that train at most SMALL_EPOCHS epochs of at most SMALL_SEEDS seeds, in this
    process unless the command asks for workers, and write no report unless it says where."""
    added = []
    seeds = RACE_SEEDS if "--race" in words else SMALL_SEEDS  # a race needs a first rung and a seed after it
    for option, bound in (("--epochs", SMALL_EPOCHS), ("--seeds", seeds)):
        values = [int(v) for value in option_values(words, option) for v in value.split(",")]
        if not values or max(values) > bound:
            added += [option, str(bound)]
    if "--workers" not in words:
        added += ["--workers", "1"]
    if "--report-dir" not in words and "--no-report" not in words:
        added.append("--no-report")
    return words + added


def small_micro(words: list[str]) -> list[str]:
    """``nnbench micro`` arguments that measure a few cases briefly: the names asked for (else one of each
    measured kind), 0.01 s each, the smallest optimizer size."""
    names = [] if "--name" in words else ["--name", "relu,mse,adam,batch"]
    return [*words, *names, "--max-time", "0.01", "--sizes", "10000"]


class Page:
    """A page's commands run in order in one folder, as a reader following it would."""

    def __init__(self, page: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.page = page
        self.home = folder
        self.monkeypatch = monkeypatch
        self.site = folder / ".site"  # where `pip install .` of a walk-through puts what it installs
        self.site.mkdir(parents=True)
        shutil.copytree(ROOT / "examples", folder / "examples")
        for name in ("benchmarks", "tests"):
            (folder / name).symlink_to(ROOT / name)
        monkeypatch.chdir(folder)
        monkeypatch.syspath_prepend(str(self.site))
        self.env = {**os.environ, "NNBENCH_PLUGINS": "none",
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(self.site), str(ROOT),
                                                                os.environ.get("PYTHONPATH")]))}
        monkeypatch.setenv("NNBENCH_PLUGINS", "none")
        self.cluster: LocalRayCluster | None = None

    @property
    def cwd(self) -> Path:
        return Path.cwd()

    def do(self, step: Command | Program) -> None:
        if isinstance(step, Program):
            self.program(step)
            return
        for part in re.split(r"\s+&&\s+", step.line):
            self.command(step, part)

    # -- Python blocks ---------------------------------------------------------------------------------

    def program(self, step: Program) -> None:
        if step.file_name:
            path = self.cwd / step.file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(step.code)
            return
        # `python -c`: no file behind __main__, as in a notebook kernel, so worker processes start as from one
        done = subprocess.run([sys.executable, "-c", step.code], cwd=self.cwd, env=self.env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, f"{step.block.where}: the Python blocks failed:\n{done.stdout}\n{done.stderr}"

    # -- command lines ---------------------------------------------------------------------------------

    def command(self, step: Command, text: str) -> None:
        where = f"{step.block.where}: `{text}`"
        words = shlex.split(text, comments=True)
        assignments = []
        while words and re.match(r"^[A-Za-z_]\w*=", words[0]):
            assignments.append(words.pop(0))
        program = words[0] if words else ""
        runs = program == "nnbench" or program in ("python", "python3") and words[1:3] != ["-m", "pip"]
        if runs:
            unknown = re.search(r"\$(?:\{(\w+)\}|(\w+))", " ".join(words + assignments))
            assert not unknown, f"{where}: the test does not know what {unknown.group(0)} holds"
            env = dict(a.split("=", 1) for a in assignments)
        if program == "nnbench":
            output = self.nnbench(words[1:], env, where, step)
        elif program in ("python", "python3") and words[1:3] == ["-m", "nnbench"]:
            output = self.nnbench(words[3:], env, where, step)
        elif program in ("python", "python3") and runs:
            output = self.python(words[1:], env, where)
        elif program == "pip" or program in ("python", "python3"):
            self.pip(words[words.index("pip") + 1:], where)
            return
        elif program == "tox":
            check_tox(words[1:], where)
            return
        elif program == "mkdir":
            for name in words[1:]:
                (self.cwd / name).mkdir(parents=True)
            return
        elif program == "cd":
            self.monkeypatch.chdir(self.cwd / words[1])
            return
        else:
            assert program in NOT_RUN, (f"{where}: the docs test does not know how to run or check `{program}`; "
                                        "run it in tests/test_docs_commands.py, or say in NOT_RUN why it cannot")
            return
        if step.expected:
            check_printed(step.expected, output, where)

    def on_page_cluster(self, args: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        """A Ray command's addresses (``--address``, ``$RAY_ADDRESS``) made the page's own cluster of one node on
        this machine, started at the page's first such command: ``ray://`` its Ray Client, any other its head."""
        named = [*option_values(args, "--address"), env.get("RAY_ADDRESS", "")]
        if not any(named):
            return args, env  # a Ray of the run's own: a dry run starts none
        if self.cluster is None:
            self.cluster = LocalRayCluster(self.home / ".ray", cpus=(1,), gpus=(0,)).start()

        def there(address: str) -> str:
            assert self.cluster is not None
            return self.cluster.client_address if address.startswith("ray://") else self.cluster.address

        args = [there(value) if option == "--address" else value
                for option, value in zip(["", *args], args, strict=False)]
        ray_settings = {name: value for name, value in cluster_env().items() if name.startswith("RAY_")}
        return args, {**env, **ray_settings, **({"RAY_ADDRESS": there(env["RAY_ADDRESS"])} if env.get("RAY_ADDRESS")
                                                else {})}

    def close(self) -> None:
        """Stop the page's Ray cluster, if it started one, after letting go of it."""
        if self.cluster is not None:
            if ray.is_initialized():
                ray.shutdown()
            self.cluster.stop()

    def run_ids(self, words: list[str], env: dict[str, str]) -> list[str]:
        stores = option_values(words, "--store")
        path = Path(stores[-1] if stores else env.get("NNBENCH_STORE", "nnbench.db"))
        if not path.exists():
            return []
        with sqlite3.connect(path) as db:
            return [row[0] for row in db.execute("SELECT run_id FROM runs ORDER BY rowid")]

    def nnbench(self, args: list[str], env: dict[str, str], where: str, step: Command) -> str:
        if any(word in PLACEHOLDERS for word in args):
            ids = self.run_ids(args, env)
            needed = max(-index for word, index in PLACEHOLDERS.items() if word in args)
            assert len(ids) >= needed, f"{where}: the page runs {len(ids)} run(s) before this, it needs {needed}"
            args = [ids[PLACEHOLDERS[word]] if word in PLACEHOLDERS else word for word in args]
        if args[:1] == ["micro"]:
            args = ["micro", *small_micro(args[1:])]
        stand_ins: list[str] = []
        if args[:1] == ["run"]:
            stand_ins = missing_accelerators(args)
            if "--executor" in args and option_values(args, "--executor")[-1] == "ray":
                args, env = self.on_page_cluster(args, env)
            if stand_ins or "--executor" in args and option_values(args, "--executor")[-1] == "ray":
                args = [*args, "--dry-run"]
            elif "--dry-run" not in args and not step.expected:  # shown output comes from the command as written
                args = small_run(args)
        with registered(StandInAccelerators(stand_ins), "stand-in accelerators") if stand_ins else nullcontext():
            result = CliRunner().invoke(cli, args, env={**env, "COLUMNS": "120"}, catch_exceptions=True)
        failure = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info and \
            not isinstance(result.exception, SystemExit) else ""
        status = 0
        if args[:1] == ["compare"] and "--fail-if-worse" in args:  # documented: 1 when credibly worse, else 0
            verdict = CliRunner().invoke(cli, [*args, "--json"], env=env, catch_exceptions=False)
            status = int(json.loads(verdict.stdout)["worse"])
        assert result.exit_code == status, \
            f"{where} exited with {result.exit_code}, not {status}:\n{result.output}\n{failure}"
        return result.output

    def python(self, args: list[str], env: dict[str, str], where: str) -> str:
        script = args[0] if args and not args[0].startswith("-") else None
        if script in SMALL_SETTINGS:
            small = SMALL_SETTINGS[script]
            if script == "benchmarks/gpu_check.py" and not torch.cuda.is_available():
                # its dry run on a machine without a GPU: the arguments parse and it says what it needs
                done = self.completed([sys.executable, *args], env, where)
                assert done.returncode == 2 and "no CUDA device is available here" in done.stderr, done.stderr
                return done.stdout
            command = [sys.executable, "-c", RUN_SCRIPT, str(ROOT / script), json.dumps(small.constants),
                       *args[1:], *small.arguments]
            done = self.completed(command, env, where)
            assert done.returncode in (0, 1) and "Traceback" not in done.stderr, \
                f"{where} failed:\n{done.stdout}\n{done.stderr}"
            assert re.search(small.prints, done.stdout), f"{where} did not print its figures:\n{done.stdout}"
            return done.stdout
        assert script is None or not script.startswith("benchmarks/"), \
            f"{where}: give {script} small settings in SMALL_SETTINGS"
        if args[:2] == ["-m", "pytest"] and len(args) == 2:
            return ""  # the whole suite: the one this test is part of (.ci/run runs it)
        return self.checked([sys.executable, *args], env, where)

    def completed(self, command: list[str], env: dict[str, str], where: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, cwd=self.cwd, env={**self.env, **env}, capture_output=True, text=True,
                              timeout=600)

    def checked(self, command: list[str], env: dict[str, str], where: str) -> str:
        done = self.completed(command, env, where)
        assert done.returncode == 0, f"{where} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    # -- pip -------------------------------------------------------------------------------------------

    def pip(self, args: list[str], where: str) -> None:
        assert args[:1] == ["install"], f"{where}: only `pip install` is documented"
        requirements = [a for a in args[1:] if a not in ("-e", "-q", "--editable")]
        assert requirements, f"{where}: nothing to install"
        for requirement in requirements:
            if requirement == "." and self.cwd != self.home:
                self.install_walkthrough(self.cwd, where)
            else:
                check_requirement(requirement, where)
                if requirement.startswith("./plugins/"):
                    self.enable_plugin(ROOT / requirement, where)

    def enable_plugin(self, folder: Path, where: str) -> None:
        """A plugin of this repository the page installs (CI has installed it): loaded for the rest of the page, its
        live logging on, MLflow's tracking store in the page's folder."""
        points = tomllib.loads((folder / "pyproject.toml").read_text())["project"]["entry-points"]["nnbench"]
        installed = {ep.name for ep in entry_points(group="nnbench")}
        assert set(points) <= installed, f"{where}: {folder.name} is not installed here (CI installs it)"
        chosen = [n for n in self.env["NNBENCH_PLUGINS"].split(",") if n and n != "none"] + list(points)
        settings = {"NNBENCH_PLUGINS": ",".join(dict.fromkeys(chosen)),
                    "MLFLOW_TRACKING_URI": f"sqlite:///{self.home / 'mlflow.db'}",
                    "NNBENCH_MLFLOW": "on", "NNBENCH_TENSORBOARD": "on"}
        for name, value in settings.items():
            self.env[name] = value
            self.monkeypatch.setenv(name, value)

    def install_walkthrough(self, folder: Path, where: str) -> None:
        """``pip install .`` of a folder the page wrote: its modules and entry points, for this page only."""
        project = tomllib.loads((folder / "pyproject.toml").read_text())
        meta = project["project"]
        for module in project["tool"]["setuptools"]["py-modules"]:
            shutil.copy(folder / f"{module}.py", self.site)
        info = self.site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
        (info / "direct_url.json").write_text(json.dumps({"url": folder.as_uri(), "dir_info": {}}))  # from a path
        groups = meta.get("entry-points", {})
        (info / "entry_points.txt").write_text("".join(
            f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in points.items())
            for group, points in groups.items()))
        importlib.invalidate_caches()
        names = ",".join(groups.get("nnbench", {}))
        assert names, f"{where}: the walk-through's package declares no nnbench entry point"
        self.env["NNBENCH_PLUGINS"] = names
        self.monkeypatch.setenv("NNBENCH_PLUGINS", names)


def check_requirement(requirement: str, where: str) -> None:
    """A requirement a documented pip command installs is this repository, a folder of it holding a
    package, torch at a version the project admits, or this distribution with extras it declares."""
    if requirement.startswith((".", "/")):
        path, _, extras = requirement.partition("[")
        assert (ROOT / path / "pyproject.toml").exists(), f"{where}: {path} holds no package"
        for extra in filter(None, extras.rstrip("]").split(",")):
            assert extra in PYPROJECT["project"]["optional-dependencies"], f"{where}: no extra [{extra}]"
        return
    wanted = Requirement(requirement)
    if wanted.name == PYPROJECT["project"]["name"]:
        for extra in wanted.extras:
            assert extra in PYPROJECT["project"]["optional-dependencies"], f"{where}: no extra [{extra}]"
        return
    declared = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    for r in declared:
        if r.name == wanted.name:
            for pinned in wanted.specifier:
                assert Version(pinned.version) in r.specifier, f"{where}: {requirement} is outside {r}"
            return
    assert re.search(rf"^\s*{re.escape(wanted.name)}\b", TOX_INI, flags=re.MULTILINE), \
        f"{where}: {requirement} is neither nnbench's dependency nor a tool tox.ini installs"


def check_tox(args: list[str], where: str) -> None:
    assert args[:1] == ["-e"], f"{where}: only `tox -e ENV` is documented"
    declared = set(re.findall(r"^\[testenv:([\w-]+)\]", TOX_INI, flags=re.MULTILINE)) | {"test"}
    for env in args[1].split(","):
        assert env in declared, f"{where}: tox.ini has no environment {env!r}"


def normalized(line: str) -> str:
    """A printed line with its numbers (times, ids, scores) and spacing made alike."""
    return " ".join(re.sub(r"\b(?=[0-9a-f]*\d)[0-9a-f]+\b", "0", line).split())


def check_printed(expected: tuple[str, ...], output: str, where: str) -> None:
    """Each line the page shows (but ``...``) is printed, in the order shown, whatever its numbers."""
    printed = iter(normalized(line) for line in output.splitlines())
    for line in expected:
        if line.strip() in ("", "..."):
            continue
        want = normalized(line)
        assert any(want in got for got in printed), f"{where} did not print {line.strip()!r} (in order):\n{output}"


# -- the tests ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_of_the_page_runs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = Page(page, tmp_path, monkeypatch)
    try:
        for step in steps(page):
            reader.do(step)
    finally:
        reader.close()


def test_the_pages_commands_are_found() -> None:
    found = {page.name: [s.line.split(" #")[0].strip() for s in steps(page) if isinstance(s, Command)]
             for page in PAGES}
    assert "nnbench compare BASELINE CANDIDATE --fail-if-worse" in found["README.md"]
    assert "nnbench run examples/grid.toml --seeds 5" in found["README.md"]
    assert "nnbench run examples/grid.toml --executor ray --address ray://head-node:10001 --device all" \
        in found["cluster.md"]
    assert "sbatch examples/slurm.sbatch examples/grid.toml --device all" in found["cluster.md"]
    recipe = [s for s in steps(ROOT / "docs" / "cluster.md") if isinstance(s, Program)]
    assert [s.file_name for s in recipe] == ["examples/slurm.sbatch"]  # a file shown, not commands run
    walkthrough = steps(ROOT / "docs" / "plugins.md")
    assert [s.file_name for s in walkthrough if isinstance(s, Program)] == \
        ["nnbench_squareplus.py", "pyproject.toml", "tests/test_squareplus.py"]
    assert any(isinstance(s, Command) and s.expected for s in walkthrough)
    readme_programs = [s for s in steps(ROOT / "README.md") if isinstance(s, Program)]
    assert len(readme_programs) == 1 and "nnbench.findings" in readme_programs[0].code  # the two cells as one


def test_shell_commands_are_in_blocks_the_test_reads() -> None:
    """A command fenced as ``sh`` or ``shell`` would be shown but never run: the pages use bash or console."""
    for page in PAGES:
        for block in blocks(page):
            assert block.language in ("bash", "console", "python", "toml", "text", ""), \
                f"{block.where}: a ```{block.language} block; fence commands as bash (or console with $ lines)"


def test_small_settings_shrink_a_run_and_leave_small_ones_alone() -> None:
    assert small_run(["run", "--epochs", "15", "--seeds", "3"]) == ["run", "--epochs", "15", "--seeds", "3",
                                                                    "--epochs", "1", "--seeds", "1", "--workers", "1",
                                                                    "--no-report"]
    assert small_run(["run", "--epochs", "1", "--seeds", "1", "--workers", "2", "--report-dir", "r"]) == \
        ["run", "--epochs", "1", "--seeds", "1", "--workers", "2", "--report-dir", "r"]
    assert small_run(["run", "grid.toml"]) == ["run", "grid.toml", "--epochs", "1", "--seeds", "1", "--workers", "1",
                                               "--no-report"]


def test_a_command_the_test_cannot_run_fails_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "page.md"
    page.write_text("```bash\nnnbench run --task nosuchtask\n```\n")
    with pytest.raises(AssertionError, match="exited with 1"):
        for step in steps(page):
            Page(page, tmp_path / "work", monkeypatch).do(step)
    page.write_text("```bash\ncurl https://example.org\n```\n")
    with pytest.raises(AssertionError, match="does not know how to run or check `curl`"):
        for step in steps(page):
            Page(page, tmp_path / "again", monkeypatch).do(step)


def test_pip_and_tox_commands_name_what_the_repository_declares() -> None:
    for good in ("torch==2.13.0", "nnbench-arena[ray]", ".[test]", "./plugins/nnbench-extras", "mutmut"):
        check_requirement(good, "here")
    for bad, why in (("torch==1.13.0", "outside"), ("nnbench-arena[gpu]", "no extra"), ("./nowhere", "no package"),
                     ("leftpad", "neither")):
        with pytest.raises(AssertionError, match=why):
            check_requirement(bad, "here")
    check_tox(["-e", "lint,type"], "here")
    with pytest.raises(AssertionError, match="no environment 'docs'"):
        check_tox(["-e", "docs"], "here")


def test_shown_output_is_matched_line_by_line_whatever_its_numbers() -> None:
    printed = "12 trials: 12 to train\nmoons — test accuracy\n    1. fnn/relu  0.8933 ± 0.0029  n=3\n" \
              "run 20261207-210947-47fc: 12 trained\n"
    check_printed(("8 trials: 8 to train", "...", "1. fnn/relu 0.5 ± 0.1 n=2", "run 20261129-063739-4607: 8 trained"),
                  printed, "here")
    with pytest.raises(AssertionError, match="did not print"):
        check_printed(("1. fnn/relu 0.5 ± 0.1 n=2", "8 trials: 8 to train"), printed, "here")


def test_the_grid_file_the_docs_show_is_the_example_in_the_repository() -> None:
    shown = re.search(r"```toml\n(.*?)```", (ROOT / "docs" / "cli.md").read_text(), flags=re.DOTALL)
    assert shown and shown.group(1) == (ROOT / "examples" / "grid.toml").read_text()


def test_the_slurm_recipe_the_docs_show_is_the_example_in_the_repository() -> None:
    shown = re.search(r"```bash\n(#!.*?)```", (ROOT / "docs" / "cluster.md").read_text(), flags=re.DOTALL)
    assert shown and shown.group(1) == (ROOT / "examples" / "slurm.sbatch").read_text()


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_link_between_the_pages_leads_somewhere() -> None:
    for page in [*PAGES, ROOT / "examples" / "README.md"]:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"\w+://", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            assert file.exists(), f"{page.name} links to {target}, which does not exist"
            if anchor:
                headings = re.findall(r"^#+ (.*)$", file.read_text(), flags=re.MULTILINE)
                assert anchor in {slug(h) for h in headings}, f"{page.name} links to {target}: no such heading"


def test_the_readme_is_a_page_a_newcomer_reads_to_the_end() -> None:
    readme = ROOT / "README.md"
    assert len(readme.read_bytes()) <= 15_000
    images = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", readme.read_text())
    assert images == ["docs/images/report.png"]
    png = (ROOT / images[0]).read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) < 300_000
