"""Code identity follows the code: what a session's object reads at run time (module-level names, captured values,
defaults, instance settings, class attributes, helpers in modules that are not installed) and the source files of a
plugin installed editable or from a path."""

from __future__ import annotations

import functools
import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import nnbench
from nnbench.loading import identity
from nnbench.loading.catalogue import collect_catalogue
from nnbench.loading.identity import code_identity
from nnbench.loading.plugins import make_plugin_manager

BEND = 4.0
OFFSETS = (0.0, 0.5)


def bend(x: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(x * x + BEND)


class Bent(nn.Module):
    """Reads a module-level constant through a helper, and a tuple directly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x + bend(x)) + OFFSETS[0]


def make_net(width: int) -> type[nn.Module]:
    class Net(nn.Module):
        hidden = width

        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layer(x)

    return Net


def make_activation(scale: float) -> Any:
    def scaled(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) * scale

    return scaled


def shifted(x: torch.Tensor, shift: float = 0.1) -> torch.Tensor:
    return torch.relu(x) - shift


class WithBuffer(nn.Module):
    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


def test_a_module_level_constant_or_a_helper_it_reads_is_part_of_the_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    before = code_identity(Bent)
    assert code_identity(Bent) == before
    monkeypatch.setattr(sys.modules[__name__], "BEND", 1.0)
    assert code_identity(Bent) != before
    monkeypatch.setattr(sys.modules[__name__], "BEND", 4.0)
    assert code_identity(Bent) == before
    monkeypatch.setattr(sys.modules[__name__], "OFFSETS", (0.0, 0.7))
    assert code_identity(Bent) != before


def test_captured_values_defaults_and_class_attributes_are_part_of_the_identity() -> None:
    assert code_identity(make_net(4)) == code_identity(make_net(4))
    assert code_identity(make_net(4)) != code_identity(make_net(8))
    assert code_identity(make_activation(1.0)) != code_identity(make_activation(2.0))
    assert code_identity(shifted) != code_identity(functools.partial(shifted, shift=0.2))
    assert code_identity(functools.partial(torch.optim.SGD, momentum=0.9)) != \
        code_identity(functools.partial(torch.optim.SGD, momentum=0.8))


def test_the_settings_of_an_instance_are_part_of_the_identity() -> None:
    assert code_identity(nn.LeakyReLU(0.1)) == code_identity(nn.LeakyReLU(0.1))
    assert code_identity(nn.LeakyReLU(0.1)) != code_identity(nn.LeakyReLU(0.2))
    big = torch.zeros(10_000)  # its repr would be abridged: the identity reads its contents
    changed = big.clone()
    changed[5_000] = 1.0
    assert code_identity(WithBuffer(big)) != code_identity(WithBuffer(changed))


def test_helpers_of_modules_that_are_not_installed_are_followed(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "local_helpers.py").write_text("SCALE = 2.0\n\ndef scale(x):\n    return x * SCALE\n")
    (tmp_path / "local_model.py").write_text(textwrap.dedent("""
        import torch
        from local_helpers import scale

        class Scaled(torch.nn.Module):
            def forward(self, x):
                return scale(torch.tanh(x))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    model = importlib.import_module("local_model")
    before = code_identity(model.Scaled)
    monkeypatch.setattr(sys.modules["local_helpers"], "SCALE", 3.0)
    assert code_identity(model.Scaled) != before


def test_two_classes_made_by_one_factory_are_two_components(tmp_path: Path) -> None:
    frame = nnbench.run(task="toy", arch={"narrow": make_net(4), "wide": make_net(8)}, optimizer="adam",
                        loss="mse", seeds=1, epochs=1, store=tmp_path / "f.db", quiet=True, dry_run=True)
    assert len(set(frame["trial_id"])) == 2
    with pytest.raises(nnbench.NNBenchError, match="would both be the architecture 'Net'"):
        nnbench.run(task="toy", arch=[make_net(4), make_net(8)], optimizer="adam", loss="mse", seeds=1,
                    epochs=1, store=tmp_path / "f.db", quiet=True, dry_run=True)


# -- plugins installed editable or from a path -----------------------------------------------------------


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A plugin distribution 'fake-plugin' 0.1 as pip leaves one installed from a path (its direct_url.json),
    importable from ``tmp_path``; yields its module's file."""
    package = tmp_path / "fake_plugin"
    package.mkdir()
    module = package / "__init__.py"
    module.write_text(textwrap.dedent("""
        import nnbench
        from torch import nn

        @nnbench.hookimpl
        def register_activations(register):
            register(nnbench.Activation("fake_act", nn.Softsign, "a fake plugin's activation"))
    """))
    info = tmp_path / "fake_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-plugin\nVersion: 0.1\n")
    (info / "top_level.txt").write_text("fake_plugin\n")
    (info / "direct_url.json").write_text('{"url": "file:///src/fake-plugin", "dir_info": {"editable": true}}')
    monkeypatch.syspath_prepend(str(tmp_path))
    identity.source_hash.cache_clear()
    identity._top_distribution.cache_clear()
    yield module
    sys.modules.pop("fake_plugin", None)
    identity.source_hash.cache_clear()
    identity._top_distribution.cache_clear()


def plugin_code(module_file: Path) -> str | None:
    """The code identity the catalogue gives the fake plugin's activation, loaded as an entry point is."""
    pm = make_plugin_manager(load_entry_points=False)
    pm.register(importlib.import_module("fake_plugin"), name="fake")
    pm.origins["fake"] = ("entry point", "fake-plugin", "0.1")
    return collect_catalogue(pm).activations.code_of("fake_act")


def test_a_plugin_installed_from_a_path_is_identified_by_its_source_files(installed_plugin: Path) -> None:
    first = plugin_code(installed_plugin)
    assert first is not None and first.startswith("fake-plugin==0.1 files:")
    installed_plugin.write_text(installed_plugin.read_text() + "\nEDITED = True\n")
    assert plugin_code(installed_plugin) == first  # this process runs the code it imported
    identity.source_hash.cache_clear()  # as a new process would
    edited = plugin_code(installed_plugin)
    assert edited is not None and edited.startswith("fake-plugin==0.1 files:") and edited != first


def test_a_plugin_from_a_package_index_is_identified_by_its_version(installed_plugin: Path) -> None:
    (installed_plugin.parents[1] / "fake_plugin-0.1.dist-info" / "direct_url.json").unlink()
    assert plugin_code(installed_plugin) == "fake-plugin==0.1"


def test_code_of_an_editable_distribution_used_by_a_session_object_is_hashed(installed_plugin: Path) -> None:
    plugin = importlib.import_module("fake_plugin")
    described = identity.installed_name(plugin.register_activations)
    assert described is not None and described.startswith("fake_plugin.register_activations fake-plugin 0.1 files:")
    assert identity.installed_name(nn.ReLU) == f"torch.nn.modules.activation.ReLU torch {torch.__version__}"
