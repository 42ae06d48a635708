"""The ``nnbench`` command line: parse, call the library, print. No logic of its own.

Every command, the built-in ones included, comes from the ``register_commands`` hook of the
session's plugins, so the group is filled when the command line starts (one session per
invocation). ``nnbench --help`` loads the plugins but none of their models: the built-in plugins
import torch only when their components are registered.
"""

from __future__ import annotations

import functools
import gc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from nnbench.contract.errors import NNBenchError, shorten_message
from nnbench.contract.paths import DEFAULT_STORE, STORE_ENV_VAR
from nnbench.contract.release import VERSION
from nnbench.loading.exits import PluginExit, exits_guarded
from nnbench.session import Session

F = TypeVar("F", bound=Callable[..., Any])
SESSION_KEY = "nnbench.session"
COMMANDS_KEY = "nnbench.commands"

STORE_SETTINGS: dict[str, Any] = {"type": click.Path(dir_okay=False, path_type=Path), "default": DEFAULT_STORE,
                                  "show_default": True, "envvar": STORE_ENV_VAR, "help": "Results database (SQLite)."}
STORE_OPTION = click.option("--store", **STORE_SETTINGS)


def friendly_errors(func: F) -> F:
    """Turn nnbench's own errors, and a path the system refuses, into a one-line message and exit status 1,
    never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NNBenchError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # the system refused a path the user gave (too long, a loop of links)
            where = f" {exc.filename}" if exc.filename else ""
            raise click.ClickException(shorten_message(f"cannot use{where}: {exc.strerror or exc}")) from None

    return wrapper  # type: ignore[return-value]


def _short_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> str:
    return f"warning: {shorten_message(str(message))}\n"


def current_session() -> Session:
    """The session of the running command line (made when its commands were collected)."""
    session: Session = click.get_current_context().find_root().meta[SESSION_KEY]
    return session


class CommandGroup(click.Group):
    """A group whose commands come from the ``register_commands`` hook of one session's plugins."""

    def _registered(self, ctx: click.Context) -> dict[str, click.Command]:
        root = ctx.find_root()
        if COMMANDS_KEY not in root.meta:
            warnings.formatwarning = _short_warning
            try:
                session = Session()
                root.meta[SESSION_KEY] = session
                root.meta[COMMANDS_KEY] = collect_commands(session)
            except NNBenchError as exc:
                raise click.ClickException(str(exc)) from None
        commands: dict[str, click.Command] = root.meta[COMMANDS_KEY]
        return commands

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with exits_guarded():  # a plugin's os._exit is named, and never ends a command with status 0
                return super().invoke(ctx)
        except PluginExit as exc:
            raise click.ClickException(f"{exc.where} called os._exit({exc.code}); nnbench stopped there") from None
        except click.ClickException as exc:  # click's own messages echo a bad value whole
            setattr(exc, "message", shorten_message(exc.message))  # noqa: B010 - declared final, set once here
            raise

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self._registered(ctx))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._registered(ctx).get(cmd_name)


def collect_commands(session: Session) -> dict[str, click.Command]:
    """Every command the session's plugins register, by name; a name taken twice names both plugins."""
    pm = session.pm
    commands: dict[str, click.Command] = {}
    owners: dict[str, str] = {}
    for impl in pm.hook.register_commands.get_hookimpls():
        plugin = pm.get_name(impl.plugin) or repr(impl.plugin)
        staged: list[click.Command] = []
        impl.function(**{"register": staged.append, "session": session})
        for command in staged:
            if not isinstance(command, click.Command) or not command.name:
                raise NNBenchError(f"plugin {plugin!r} registered {command!r} as a command; register a named "
                                   "click.Command")
            if command.name in commands:
                raise NNBenchError(f"the command {command.name!r} is registered twice: by plugin "
                                   f"{owners[command.name]!r} and by plugin {plugin!r}")
            commands[command.name], owners[command.name] = command, plugin
    return commands


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(VERSION, prog_name="nnbench")
def cli() -> None:
    """Benchmark neural-network components against each other, with evidence.

    Run `nnbench run` for the default grid, `nnbench list` to see the components.
    """


def main() -> None:
    """Console-script entry point."""
    try:
        cli(prog_name="nnbench")
    finally:
        # The process ends next. Its objects are left out of the garbage collector's passes during
        # shutdown, which take most of a second once torch, pandas and matplotlib are imported; they
        # are still freed as the modules are torn down (only cycles among them are left to the system).
        gc.freeze()
