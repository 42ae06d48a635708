"""Which code a component comes from, as part of its trials' identity.

Built-in components have none (their trials keep the ids of every earlier release); a component of an
installed plugin is identified by its distribution and version; anything defined in the session (a
notebook's class, an in-process plugin's function) by a hash of its source and of the helpers of its
own module it uses.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import types
from collections.abc import Iterable
from typing import Any


def code_identity(obj: Any) -> str:
    """What identifies the code of ``obj``: a hash of its source and of the sources of the functions and
    classes of its own module that it uses (transitively), so that editing a helper it calls counts too.
    Where there is no source (a function typed at a plain interpreter prompt), the hash of its pickled
    bytes (cloudpickle) stands in."""
    sources: list[str] = []
    try:
        _collect_sources(obj, sources, set())
    except (OSError, TypeError):
        import cloudpickle

        return "pickle:" + hashlib.sha256(cloudpickle.dumps(obj)).hexdigest()[:16]
    return "source:" + hashlib.sha256("\n".join(sources).encode()).hexdigest()[:16]


def has_source(obj: Any) -> bool:
    return code_identity(obj).startswith("source:")


def _collect_sources(obj: Any, sources: list[str], seen: set[int]) -> None:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    target = obj.func if isinstance(obj, functools.partial) else obj
    if dataclasses.is_dataclass(target) and not isinstance(target, type):  # a spec: its callables and fields
        for f in dataclasses.fields(target):
            value = getattr(target, f.name)
            if callable(value) and not isinstance(value, type | types.BuiltinFunctionType) or isinstance(value, type):
                _collect_sources(value, sources, seen)
            else:
                sources.append(f"{f.name}={_canonical(value)!r}")
        return
    if not isinstance(target, type) and not inspect.isroutine(target):
        target = type(target)  # an instance: its class's code (its settings are in its pickled state)
        sources.append(repr(_canonical(getattr(obj, "__dict__", {}))))
    if isinstance(target, types.BuiltinFunctionType) or getattr(target, "__module__", "") in ("builtins",):
        sources.append(f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', target)!r}")
        return
    if _importable(target):
        sources.append(f"{target.__module__}.{target.__qualname__}")  # installed code: its name and version
        sources.append(_version_of(target.__module__))
        return
    sources.append(_source(target))
    for helper in _helpers(target):
        _collect_sources(helper, sources, seen)


def _source(target: Any) -> str:
    """``inspect.getsource``, which also finds a class defined in a notebook cell (a kernel's main module has
    no file, so inspect finds functions there but not classes: the class is found from one of its methods)."""
    try:
        return inspect.getsource(target)
    except (OSError, TypeError):
        if not isinstance(target, type):
            raise
    import linecache
    import re

    for value in vars(target).values():
        code = getattr(getattr(value, "__func__", value), "__code__", None)
        if code is None:
            continue
        lines = linecache.getlines(code.co_filename)
        pattern = re.compile(rf"^\s*class\s+{re.escape(target.__name__)}\b")
        starts = [i for i in range(min(code.co_firstlineno, len(lines))) if pattern.match(lines[i])]
        if starts:
            return "".join(inspect.getblock(lines[starts[-1]:]))
    raise OSError(f"no source found for {target.__qualname__}")


def _canonical(value: Any) -> Any:
    """``value`` with sets sorted and mappings ordered, so its repr is the same in every process."""
    if isinstance(value, set | frozenset):
        return sorted(map(_canonical, value), key=repr)
    if isinstance(value, dict) or type(value).__name__ == "mappingproxy":
        return sorted((str(k), _canonical(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def _importable(target: Any) -> bool:
    """Code of an installed distribution (torch, a plugin): identified by name and version, not source."""
    module = getattr(target, "__module__", None) or ""
    top = module.split(".", 1)[0]
    return top not in ("__main__", "") and _version_of(module) != ""


@functools.cache
def _version_of(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    top = module.split(".", 1)[0]
    for dist in packages_distributions().get(top, []):
        try:
            return f"{dist} {version(dist)}"
        except PackageNotFoundError:
            continue
    return ""


def _helpers(target: Any) -> Iterable[Any]:
    """The functions and classes of ``target``'s own module that its code names."""
    functions = [target] if inspect.isroutine(target) else [
        v for v in vars(target).values() if inspect.isroutine(v) or isinstance(v, staticmethod | classmethod)]
    found = []
    for function in functions:
        function = getattr(function, "__func__", function)
        code = getattr(function, "__code__", None)
        module_globals = getattr(function, "__globals__", {})
        if code is None:
            continue
        for name in _names(code):
            value = module_globals.get(name)
            if (inspect.isroutine(value) or isinstance(value, type)) and not _importable(value) \
                    and getattr(value, "__module__", None) == getattr(target, "__module__", None):
                found.append(value)
    return found


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names
