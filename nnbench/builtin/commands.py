"""The built-in commands, registered through ``register_commands`` like a plugin's."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from nnbench.cli.compare import compare
from nnbench.cli.listing import list_components, plugins
from nnbench.cli.merge import merge
from nnbench.cli.micro import micro
from nnbench.cli.results import export, report
from nnbench.cli.run import make_run_command
from nnbench.contract.hookspecs import hookimpl

if TYPE_CHECKING:
    import click

    from nnbench.session import Session


@hookimpl
def register_commands(register: Callable[[click.Command], None], session: Session) -> None:
    for command in (make_run_command(session), list_components, plugins, report, compare, export, merge, micro):
        register(command)
