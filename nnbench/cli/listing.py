"""``nnbench list`` and ``nnbench plugins``: what the session's plugins registered, kind by kind."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import click

from nnbench.cli import current_session, friendly_errors
from nnbench.contract.domain import Domain, KindError
from nnbench.contract.errors import NNBenchError
from nnbench.planning.grid import takes_keyword


def component_details(kind: str, spec: Any, domain: Domain) -> str:
    """The essentials of a component, in a few words, for its kind."""
    if kind == "task":
        return f"{spec.kind}, {spec.modality} {tuple(spec.input_shape)}, metric {spec.metric}"
    if kind == "loss":
        return "trains " + "/".join(sorted(spec.kinds))
    if kind == "optimizer":
        return f"default lr {spec.default_lr:g}"
    if kind == "architecture":
        takes = [r.name for r in domain.stage_kinds("build") if _takes(spec, r.name)]
        return "reads " + "/".join(spec.modalities) + (f"; takes {', '.join(takes)}" if takes else "")
    record = domain.kind(kind)
    if record.stage != "core":
        return "the default" if spec.name == record.kind.default else ""
    return ""


def _takes(spec: Any, kind: str) -> bool:
    return takes_keyword(spec.build, kind)


@click.command("list")
@click.argument("kind", required=False)
@click.argument("pattern", required=False)
@click.option("--plugin", "plugin_name", help="Only components of this plugin.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@friendly_errors
def list_components(kind: str | None, pattern: str | None, plugin_name: str | None, as_json: bool) -> None:
    """List registered components.

    KIND is a kind's name or plural (activations, losses, optimizers, architectures or archs, tasks,
    schedules, initializers, norms, devices, executors, exporters, and any kind a plugin adds); PATTERN filters
    names with wildcards (e.g. 'adam*'). A lone wildcard pattern searches every kind.
    """
    session = current_session()
    domain, catalogue = session.domain, session.catalogue
    if kind is not None and pattern is None and any(ch in kind for ch in "*?["):
        kind, pattern = None, kind  # `nnbench list 'adam*'`
    try:
        records = [domain.kind(kind)] if kind else list(domain.kinds)
    except KindError as exc:
        raise NNBenchError(str(exc)) from None
    rows: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        registry = catalogue.registry(record.name)
        rows[record.name] = [
            {"kind": record.name, "name": name, "description": getattr(spec, "description", ""),
             "details": component_details(record.name, spec, domain), "plugin": registry.plugin_of(name),
             "code": registry.code_of(name)}
            for name in registry.names(pattern or "*") for spec in (registry.get(name),)
            if plugin_name is None or registry.plugin_of(name) == plugin_name]
    if pattern and not any(rows.values()):
        raise NNBenchError(f"no {records[0].plural if kind else 'component'} matches {pattern!r}; "
                           f"`nnbench list{' ' + kind if kind else ''}` shows them all")
    if plugin_name is not None and not any(rows.values()):
        known = sorted({e.plugin for r in catalogue.registries() for e in r.entries()})
        raise NNBenchError(f"no component matches plugin {plugin_name!r}; plugins: {', '.join(known)}")
    if as_json:
        click.echo(json.dumps([row for part in rows.values() for row in part], indent=2))
        return
    for record in records:
        part = rows[record.name]
        if pattern and not part and not kind:
            continue
        core = record.stage == "core"
        stage = "" if core else f", plugs in at the {record.stage} stage, default {record.kind.default}"
        click.echo(f"{record.plural} ({len(part)}{stage}):")
        for row in part:
            details = f" [{row['details']}]" if row["details"] else ""
            code = f", {row['code']}" if row["code"] else ""  # the version its results are stored under
            click.echo(f"  {row['name']:<16} {row['description']}{details}  (plugin: {row['plugin']}{code})")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@friendly_errors
def plugins(as_json: bool) -> None:
    """List loaded plugins: version, hooks and the components (and kinds) each contributed."""
    session = current_session()
    catalogue = session.catalogue
    described = []
    for info in session.pm.describe():
        components = {r.record.plural: [e.spec.name for e in r.entries() if e.plugin == info.name]
                      for r in catalogue.registries()}
        kinds = [r.name for r in session.domain.plugin_kinds if r.plugin == info.name]
        described.append({**dataclasses.asdict(info), "kinds": kinds,
                          "components": {k: v for k, v in components.items() if v}})
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    for item in described:
        origin = f"{item['distribution']} {item['version']}".strip()
        click.echo(f"{item['name']}  ({item['source']}{', ' + origin if origin else ''})")
        click.echo(f"  hooks: {', '.join(item['hooks']) or 'none'}")
        if item["kinds"]:
            click.echo(f"  kinds: {', '.join(item['kinds'])}")
        for plural, names in item["components"].items():
            click.echo(f"  {plural}: {', '.join(names)}")
