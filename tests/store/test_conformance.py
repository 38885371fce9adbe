"""Conformance: every store has every protocol member, with its signature and its meaning.

:func:`protocol_problems` compares a store with the protocols member by member (present,
callable, same parameters); :func:`semantic_problems` runs the rules every store keeps
on a fresh one. Both are shown to fail on stores that break them (the ``Broken*``
classes below), so a store passes because it conforms, not by construction.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol

import pytest

from engine.contracts.errors import ConflictError, IllegalTransition, NotFoundError
from engine.contracts.events import RunUpdate
from engine.contracts.files import FileStore
from engine.contracts.store import (
    ReadStore,
    ReviewStore,
    RunStore,
    Store,
    WorkflowStore,
)
from engine.contracts.values import Payload, RunStatus
from store.memory import MemoryStore
from tests.store.helpers import T0, S, ev, lifecycle, new_run

PROTOCOLS: tuple[type, ...] = (RunStore, ReviewStore, WorkflowStore, ReadStore, Store)


def _members(proto: type) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for cls in reversed(proto.__mro__):
        if cls in (object, Protocol) or not getattr(cls, "_is_protocol", False):
            continue
        members.update({n: v for n, v in vars(cls).items() if not n.startswith("_")})
        members.update({n: None for n in getattr(cls, "__annotations__", {})})
    return members


def _params(fn: Callable[..., Any]) -> list[tuple[str, Any, bool]]:
    return [(p.name, p.kind, p.default is not inspect.Parameter.empty)
            for p in inspect.signature(fn).parameters.values() if p.name != "self"]


def protocol_problems(store: object, proto: type) -> list[str]:
    """What ``store`` lacks of ``proto``: missing or non-callable members, other signatures."""
    checkable = getattr(proto, "_is_runtime_protocol", False)
    problems = [] if not checkable or isinstance(store, proto) else [f"not a {proto.__name__}"]
    for name, declared in _members(proto).items():
        if not hasattr(store, name):
            problems.append(f"{name}: missing")
            continue
        value = getattr(store, name)
        if isinstance(declared, property):
            if not isinstance(value, bool):
                problems.append(f"{name}: not a bool")
        elif callable(declared):
            if not callable(value):
                problems.append(f"{name}: not callable")
            elif _params(value) != _params(declared):
                problems.append(f"{name}: signature {_params(value)} != {_params(declared)}")
        elif name == "files":
            problems += [f"files.{p}" for p in protocol_problems(value, FileStore)]
    return problems


def semantic_problems(store: Store) -> list[str]:
    """The rules every store keeps, checked on a fresh ``store``; the ones it breaks."""
    problems: list[str] = []

    def expect(error: type[Exception], rule: str, fn: Callable[[], object]) -> None:
        try:
            fn()
        except error:
            return
        except Exception as exc:  # noqa: BLE001 - report which rule broke, and how
            problems.append(f"{rule}: raised {type(exc).__name__}")
            return
        problems.append(f"{rule}: did not raise {error.__name__}")

    store.create_run(new_run(), now=T0)
    expect(ConflictError, "duplicate run", lambda: store.create_run(new_run(), now=T0))
    expect(NotFoundError, "unknown run", lambda: store.load_run("nope"))
    expect(NotFoundError, "unknown run heartbeat", lambda: store.heartbeat("nope", T0))
    expect(IllegalTransition, "lifecycle table", lambda: store.apply(
        "run_1", [ev("a", S.PENDING), ev("a", S.RUNNING)], now=T0))
    if store.load_steps("run_1"):
        problems.append("all or nothing: a refused batch left steps behind")
    store.apply("run_1", lifecycle("a", {"o": Payload.json(1)}),
                RunUpdate(status=RunStatus.RUNNING), now=T0)
    if store.read_step("a", run_id="run_1").status != "completed":
        problems.append("committed: a read does not see an applied batch")
    if [t["status"] for t in store.transitions("run_1")] != [
            "pending", "queued", "running", "completed"]:
        problems.append("audit trail: transitions differ")
    store.request_cancel("run_1", "stop")
    if store.cancel_requested("run_1") != "stop":
        problems.append("cancel flag: the reason is not kept")
    seen = store.load_run("run_1")
    store.claim_owner("run_1", 1, T0 + 1, seen_pid=seen.owner_pid,
                      seen_heartbeat=seen.heartbeat_at)
    if store.claim_owner("run_1", 2, T0 + 2, seen_pid=seen.owner_pid,
                         seen_heartbeat=seen.heartbeat_at):
        problems.append("owner claim: a stale claim won")
    return problems


@pytest.mark.parametrize("proto", PROTOCOLS, ids=lambda p: p.__name__)
def test_store_has_every_protocol_member(store: Store, proto: type) -> None:
    assert protocol_problems(store, proto) == []


def test_store_keeps_the_rules(store: Store) -> None:
    assert semantic_problems(store) == []


# ------------------------------------------------------------------ the checks can fail


class BrokenNoHeartbeat(MemoryStore):
    heartbeat = None  # type: ignore[assignment]


class BrokenSignature(MemoryStore):
    def reviews(self, run_id: str | None = None) -> list[Any]:  # type: ignore[override]
        return []


class BrokenLax(MemoryStore):
    """Keeps what it can of a refused batch, and ignores moves it cannot make."""

    def apply(self, run_id: str, events: Any, run_update: Any = None, *, now: float,
              logs: Any = ()) -> None:
        if logs:
            self.append_logs(run_id, logs, now=now)
        for event in events:
            try:
                super().apply(run_id, [event], now=now)
            except IllegalTransition:
                continue


class BrokenCancel(MemoryStore):
    def cancel_requested(self, run_id: str) -> str | None:
        return None


class BrokenClaim(MemoryStore):
    def claim_owner(self, run_id: str, pid: int, now: float, *, seen_pid: int | None,
                    seen_heartbeat: float | None) -> bool:
        self.set_owner(run_id, pid, now)
        return True


def test_protocol_check_catches_a_missing_method_and_a_signature() -> None:
    assert "heartbeat: not callable" in protocol_problems(BrokenNoHeartbeat(), RunStore)
    [problem] = protocol_problems(BrokenSignature(), ReviewStore)
    assert problem.startswith("reviews: signature")


@pytest.mark.parametrize(("broken", "rule"), [
    (BrokenLax, "lifecycle table"), (BrokenLax, "all or nothing"),
    (BrokenCancel, "cancel flag"), (BrokenClaim, "owner claim"),
])
def test_semantic_check_catches_a_broken_rule(broken: type[MemoryStore], rule: str) -> None:
    assert any(p.startswith(rule) for p in semantic_problems(broken()))
