"""Which code a component comes from, as part of its trials' identity.

Built-in components have none (their trials keep the ids of every earlier release). A component of a plugin
installed from a package index is identified by its distribution and version; one installed editable or from a
path (a ``direct_url.json`` in its metadata) also by a hash of its package's source files, since such code
changes without a new version. Anything defined in the session (a notebook's class, an in-process plugin's
function) is identified by what decides its behaviour: its source, the values it reads at run time (the
module-level names its code loads, the values its closures captured, its default arguments, the settings of
an instance and a class's attributes) and, the same way, the helpers it calls that are not installed code.
"""

from __future__ import annotations

import dataclasses
import dis
import functools
import hashlib
import importlib.util
import inspect
import json
import linecache
import pickle
import re
import sys
import types
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path
from typing import Any

GLOBAL_LOADS = ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS")
MAX_DEPTH = 12  # values nested deeper than this (a graph of objects) are identified by their type alone


def code_identity(obj: Any) -> str:
    """What identifies the code of ``obj`` (see the module docstring): ``source:`` and a hash. Where there is no
    source (a function typed at a plain interpreter prompt), ``pickle:`` and the hash of its pickled bytes
    (cloudpickle) stand in."""
    collector = _Collector()
    try:
        collector.code(obj, 0)
    except (OSError, TypeError):
        import cloudpickle  # only for code without source, which is rare

        return "pickle:" + hashlib.sha256(cloudpickle.dumps(obj)).hexdigest()[:16]
    return "source:" + hashlib.sha256("\n".join(collector.parts).encode()).hexdigest()[:16]


def has_source(obj: Any) -> bool:
    return code_identity(obj).startswith("source:")


class _Collector:
    """The parts that identify an object's code, gathered once per object (cycles are cut by ``seen``)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.seen: set[int] = set()

    def code(self, obj: Any, depth: int) -> None:
        """A function, class, ``functools.partial``, spec or instance: its code and the values it reads."""
        if id(obj) in self.seen:
            self.parts.append(f"<again {getattr(obj, '__qualname__', type(obj).__qualname__)}>")
            return
        self.seen.add(id(obj))
        if isinstance(obj, functools.partial):
            self.code(obj.func, depth + 1)
            self.value("args", obj.args, depth + 1)
            self.value("keywords", obj.keywords, depth + 1)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):  # a spec: its callables and fields
            for f in dataclasses.fields(obj):
                self.value(f.name, getattr(obj, f.name), depth + 1)
        elif isinstance(obj, types.MethodType):
            self.code(obj.__func__, depth + 1)
            self.value("self", obj.__self__, depth + 1)
        elif isinstance(obj, type) or inspect.isroutine(obj):
            installed = installed_name(obj)
            if installed is not None:
                self.parts.append(installed)
            elif isinstance(obj, type):
                self._class(obj, depth)
            else:
                self.parts.append(_source(obj))
                self._function(obj, depth)
        else:  # an instance: its class's code and its own settings
            self.code(type(obj), depth + 1)
            self.value("state", _state(obj), depth + 1)

    def _class(self, cls: type, depth: int) -> None:
        self.parts.append(_source(cls))
        for base in cls.__bases__:
            if base is not object:
                self.code(base, depth + 1)
        for name, attribute in vars(cls).items():
            function = getattr(attribute, "__func__", attribute)  # staticmethod, classmethod
            if inspect.isfunction(function) and function.__qualname__.startswith(cls.__qualname__ + "."):
                self._function(function, depth)  # a method: its source is part of the class's
            elif isinstance(attribute, property):
                for accessor in (attribute.fget, attribute.fset, attribute.fdel):
                    if inspect.isfunction(accessor):
                        self._function(accessor, depth)
            elif not (name.startswith("__") and name.endswith("__")):
                self.value(name, attribute, depth + 1)

    def _function(self, function: Any, depth: int) -> None:
        """What a function reads beyond its source: defaults, captured values and module-level names."""
        function = getattr(function, "__func__", function)
        code = getattr(function, "__code__", None)
        if code is None:
            return
        self.value("defaults", function.__defaults__, depth + 1)
        self.value("kwdefaults", function.__kwdefaults__, depth + 1)
        for name, cell in zip(code.co_freevars, function.__closure__ or (), strict=False):
            try:
                contents = cell.cell_contents
            except ValueError:  # a cell not filled yet
                continue
            self.value(name, contents, depth + 1)
        module_globals = getattr(function, "__globals__", {})
        for name in sorted(_global_loads(code)):
            if name in module_globals:
                self.value(name, module_globals[name], depth + 1)

    def value(self, name: str, value: Any, depth: int) -> None:
        self.parts.append(f"{name}={self._describe(value, depth)}")

    def _describe(self, value: Any, depth: int) -> str:
        """A value as text that is the same in every process and session where the value is the same."""
        if value is None or isinstance(value, bool | int | float | complex | str | bytes):
            return repr(value)
        if depth > MAX_DEPTH:
            return f"<{type(value).__qualname__}>"
        if isinstance(value, types.ModuleType):
            return f"<module {value.__name__}>"
        if isinstance(value, list | tuple):
            return f"{type(value).__name__}[" + ", ".join(self._describe(v, depth + 1) for v in value) + "]"
        if isinstance(value, set | frozenset):
            return "set{" + ", ".join(sorted(self._describe(v, depth + 1) for v in value)) + "}"
        if isinstance(value, dict) or type(value).__name__ == "mappingproxy":
            items = sorted((str(k), self._describe(v, depth + 1)) for k, v in value.items())
            return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
        array = _array_bytes(value)
        if array is not None:
            return array
        if callable(value) or _state(value) is not None:
            start = len(self.parts)
            self.code(value, depth + 1)
            nested, self.parts[start:] = self.parts[start:], []
            return "<" + hashlib.sha256("\n".join(nested).encode()).hexdigest()[:16] + ">"
        try:  # an object without settings of its own to read (slots, a C type): its pickled form
            return "<pickled " + hashlib.sha256(pickle.dumps(value, protocol=4)).hexdigest()[:16] + ">"
        except Exception:  # cannot be pickled: its type stands for it
            return f"<{type(value).__module__}.{type(value).__qualname__}>"


def _state(obj: Any) -> dict[str, Any] | None:
    """An instance's own settings (its ``__dict__``, or its slots), or ``None`` when it has none to read."""
    state = getattr(obj, "__dict__", None)
    if isinstance(state, dict):
        return state
    slots = [s for cls in type(obj).__mro__ for s in getattr(cls, "__slots__", ()) if isinstance(s, str)]
    if slots:
        return {s: getattr(obj, s) for s in slots if hasattr(obj, s)}
    return None


def _array_bytes(value: Any) -> str | None:
    """A tensor or array as its type, shape and a hash of its contents (its repr would be abridged)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype in (torch.bfloat16,) or value.is_quantized:
            value = value.float()
        value = value.numpy()
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        contents = numpy.ascontiguousarray(value).tobytes() if value.dtype != object else pickle.dumps(value)
        return f"<array {value.dtype} {value.shape} {hashlib.sha256(contents).hexdigest()[:16]}>"
    return None


def _global_loads(code: types.CodeType) -> set[str]:
    """The module-level names that ``code`` (and the functions and comprehensions inside it) loads."""
    names = {i.argval for i in dis.get_instructions(code) if i.opname in GLOBAL_LOADS}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_loads(const)
    return {str(n) for n in names}


def _source(target: Any) -> str:
    """``inspect.getsource``, which also finds a class defined in a notebook cell (a kernel's main module has
    no file, so inspect finds functions there but not classes: the class is found from one of its methods)."""
    try:
        return inspect.getsource(target)
    except (OSError, TypeError):
        if not isinstance(target, type):
            raise
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


# -- installed code -------------------------------------------------------------------------------------


def installed_name(target: Any) -> str | None:
    """How installed code is identified: its qualified name and its distribution's identity (the standard
    library's: its name alone); ``None`` for code that is not installed (a notebook's, a script's, a module
    beside them)."""
    module = getattr(target, "__module__", None) or ""
    qualified = f"{module}.{getattr(target, '__qualname__', repr(target))}"
    top = module.split(".", 1)[0]
    if isinstance(target, types.BuiltinFunctionType) or top in sys.stdlib_module_names or top == "builtins":
        return qualified
    if top in ("__main__", ""):
        return None
    found = module_distribution(module)
    return None if found is None else f"{qualified} {found}"


def module_distribution(module: str) -> str | None:
    """``distribution version`` of the installed distribution providing ``module`` (with ``files:`` and a hash
    of its source where it was installed editable or from a path), or ``None``."""
    return _top_distribution(module.split(".", 1)[0])


@functools.cache
def _top_distribution(top: str) -> str | None:
    for name in packages_distributions().get(top, []):
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        files = source_hash(dist.metadata["Name"], top)
        return f"{dist.metadata['Name']} {dist.version}" + (f" files:{files}" if files else "")
    return None


@functools.cache
def source_hash(dist_name: str, module: str) -> str | None:
    """A hash of the source files of ``module``'s top-level package, where distribution ``dist_name`` was
    installed editable or from a path, a VCS or an archive (its ``direct_url.json``), so that editing it
    without a new version changes its identity; ``None`` for a distribution from a package index, whose
    version says which code it is. Computed once per process: the code this process runs is the code it
    imported."""
    if dist_name.replace("_", "-").lower() == "nnbench-arena":
        return None  # nnbench's own code is identified by its version, as built-in components have no identity
    try:
        direct_url = distribution(dist_name).read_text("direct_url.json")
    except PackageNotFoundError:
        return None
    if not direct_url:
        return None
    try:
        json.loads(direct_url)
    except ValueError:
        return None
    digest = hashlib.sha256()
    found = False
    for relative, path in _source_files(module.split(".", 1)[0]):
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
        found = True
    return digest.hexdigest()[:16] if found else None


def _source_files(top: str) -> Iterator[tuple[str, Path]]:
    """The Python source files of the package (or module) ``top``, with their paths relative to it, in order."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return
    if spec is None:
        return
    if spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            root = Path(location)
            for path in sorted(root.rglob("*.py")):
                if "__pycache__" not in path.parts:
                    yield str(path.relative_to(root)), path
    elif spec.origin and spec.origin.endswith(".py"):
        yield Path(spec.origin).name, Path(spec.origin)
