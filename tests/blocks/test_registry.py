"""The block registry: eager and lazy entries, aliases, errors that name what to do."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from blocks.builtin import BUILTIN_TYPES
from blocks.control import StartJson
from blocks.registry import BlockRegistry, default_registry
from engine.contracts.errors import RegistryError


def test_every_builtin_entry_loads_as_declared() -> None:
    registry = default_registry()
    for name, (_, aliases, authorable) in BUILTIN_TYPES.items():
        impl = registry.get(name)
        assert impl.type_name == name
        assert impl.authorable is authorable
        for alias in aliases:
            assert registry.get(alias) is impl
            assert registry.canonical(alias) == name


def test_names_are_listed_without_importing_and_stay_the_same_after() -> None:
    registry = default_registry()
    before = (registry.names(), registry.names(authorable_only=False))
    assert "start" in before[0] and "while_loop_sentinel_end" not in before[0]
    assert "while_loop_sentinel_end" in before[1]
    for name in before[1]:
        registry.get(name)
    assert (registry.names(), registry.names(authorable_only=False)) == before


def test_a_workflow_of_one_type_imports_only_its_module() -> None:
    code = ("import json, sys; from blocks.registry import default_registry; "
            "r = default_registry(); r.get('start_json'); "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('blocks.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    loaded = json.loads(out)
    assert "blocks.control" in loaded
    for module in ("blocks.function", "blocks.classifier", "blocks.conditional",
                   "blocks.parse", "blocks.api_call", "blocks.loops"):
        assert module not in loaded


def test_lazy_entry_that_does_not_match_its_class_says_so() -> None:
    registry = BlockRegistry()
    registry.register_lazy("json_start", "blocks.control:StartJson")
    with pytest.raises(RegistryError, match="type_name='start_json'.*match the class"):
        registry.get("json_start")
    registry = BlockRegistry()
    registry.register_lazy("start_json", "blocks.control:StartJson", authorable=False)
    with pytest.raises(RegistryError, match="authorable=False"):
        registry.get("start_json")


def test_lazy_target_must_name_module_and_class() -> None:
    with pytest.raises(RegistryError, match="MODULE:CLASS"):
        BlockRegistry().register_lazy("x", "blocks.control.StartJson")


def test_duplicates_raise_for_lazy_and_eager_alike() -> None:
    registry = default_registry()
    with pytest.raises(RegistryError, match="'start_json' is already registered .by StartJson"):
        registry.register(StartJson())
    with pytest.raises(RegistryError, match="'start' is already registered"):
        registry.register_lazy("other", "blocks.control:StartJson", aliases=("start",))


def test_copy_loads_independently() -> None:
    registry = default_registry()
    clone = registry.copy()
    assert type(clone.get("function")) is type(registry.get("function"))
    assert "function" in clone and "functions" in clone
    with pytest.raises(RegistryError, match="Unknown block type 'nope'. Known types: "):
        clone.get("nope")


def test_threads_loading_one_type_at_once_all_get_the_same_instance() -> None:
    import threading

    for _ in range(20):
        registry = default_registry()
        barrier = threading.Barrier(8)
        got: list[object] = []
        errors: list[BaseException] = []

        def look(registry: BlockRegistry = registry, barrier: threading.Barrier = barrier,
                 got: list[object] = got, errors: list[BaseException] = errors) -> None:
            barrier.wait()
            try:
                got.append(registry.get("while_loop"))
                registry.names()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=look) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert len(got) == 8 and all(impl is got[0] for impl in got)


class Later(StartJson):
    type_name = "later"


def _adding(name: str, calls: list[str]) -> Callable[[BlockRegistry], None]:
    def loader(registry: BlockRegistry) -> None:
        calls.append(name)
        registry.register(Later())
    return loader


def test_a_deferred_loader_runs_only_when_a_name_is_missing_and_then_once() -> None:
    calls: list[str] = []
    registry = default_registry()
    registry.defer(_adding("later", calls))
    registry.get("start_json")
    assert "function" in registry and registry.canonical("start") == "start_document"
    assert calls == []
    assert "later" in registry
    assert calls == ["later"]
    assert "absent" not in registry and calls == ["later"]
    with pytest.raises(RegistryError, match="Unknown block type 'absent'"):
        registry.get("absent")
    assert calls == ["later"]


@pytest.mark.parametrize("ask", [
    lambda r: r.names(),
    lambda r: r.get("later"),
    lambda r: r.canonical("later"),
    lambda r: r.register(StartJson()),  # a new name is checked against the deferred ones
])
def test_listing_looking_up_or_registering_runs_the_deferred_loader(
        ask: Callable[[BlockRegistry], object]) -> None:
    calls: list[str] = []
    registry = BlockRegistry()
    registry.defer(_adding("later", calls))
    ask(registry)
    assert calls == ["later"]
    assert "later" in registry.names(authorable_only=False)


def test_a_failing_deferred_loader_reaches_the_caller_and_runs_again() -> None:
    attempts: list[int] = []

    def broken(registry: BlockRegistry) -> None:
        attempts.append(1)
        raise RegistryError("the plugin is broken")

    registry = default_registry()
    registry.defer(broken)
    assert registry.get("start_json").type_name == "start_json"
    for _ in range(2):
        with pytest.raises(RegistryError, match="the plugin is broken"):
            registry.get("stamp")
    assert len(attempts) == 2


def test_a_copy_runs_the_deferred_loader_on_itself() -> None:
    calls: list[str] = []
    registry = default_registry()
    registry.defer(_adding("later", calls))
    clone = registry.copy()
    assert "later" in clone and calls == ["later"]
    assert "later" in registry and calls == ["later", "later"]


def test_threads_needing_deferred_types_wait_for_one_loader() -> None:
    import threading
    import time

    calls: list[str] = []

    def slow(registry: BlockRegistry) -> None:
        calls.append("slow")
        time.sleep(0.05)
        registry.register(Later())

    registry = default_registry()
    registry.defer(slow)
    barrier = threading.Barrier(6)
    found: list[bool] = []

    def look() -> None:
        barrier.wait()
        found.append("later" in registry)

    threads = [threading.Thread(target=look) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["slow"] and found == [True] * 6
