"""``@record`` makes the class ``@dataclass(frozen=True, slots=True, kw_only=True)`` makes:
the same fields, immutability, equality, hash, repr, pickling and copying."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import pickle
import pkgutil
from dataclasses import FrozenInstanceError, dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.contracts.frozen import builder, record


def _shape(name: str) -> type:
    """A class with every kind of field and a method, named ``name``, not yet decorated:
    decorated by ``record`` and by ``dataclass``, the two must behave alike."""

    class Shape:
        name: str
        count: int = 0
        tags: list[str] = field(default_factory=list)
        secret: str = field(default="", repr=False)
        note: str = field(default="", compare=False)
        weight: float = field(default=0.0, hash=False)
        extra: Any = None

        def label(self) -> str:
            """A method, kept as written."""
            return f"{self.name}:{self.count}"

    Shape.__name__ = Shape.__qualname__ = name
    Shape.__doc__ = f"{name}: a record with every kind of field."
    return Shape


Made: Any = record(_shape("Made"))
Reference: Any = dataclass(frozen=True, slots=True, kw_only=True)(_shape("Reference"))


def _pair(**values: Any) -> tuple[Any, Any]:
    return Made(**values), Reference(**values)


values = st.fixed_dictionaries({
    "name": st.text(max_size=8),
    "tags": st.lists(st.text(max_size=3), max_size=3).map(tuple),  # hashable
}, optional={
    "count": st.integers(),
    "secret": st.text(max_size=4), "note": st.text(max_size=4),
    "weight": st.floats(allow_nan=True), "extra": st.none() | st.integers() | st.text(),
})


@given(values, values)
def test_equality_hash_and_repr_are_dataclass_s(first: dict[str, Any],
                                                 second: dict[str, Any]) -> None:
    a, ref_a = _pair(**first)
    b, ref_b = _pair(**second)
    assert (a == b) == (ref_a == ref_b)
    assert (a != b) == (ref_a != ref_b)
    same, ref_same = a, ref_a  # a NaN weight equals itself: identity, as in a tuple
    assert (a == same) == (ref_a == ref_same)
    assert repr(a).replace("Made", "Reference", 1) == repr(ref_a)
    assert hash(a) == hash(ref_a)
    if a == b:
        assert hash(a) == hash(b)
    assert dataclasses.asdict(a) == dataclasses.asdict(ref_a)
    assert dataclasses.astuple(a) == dataclasses.astuple(ref_a)


def test_a_record_is_a_frozen_slotted_keyword_only_dataclass() -> None:
    made = Made(name="a", tags=["x"])
    assert dataclasses.is_dataclass(made)
    assert [f.name for f in dataclasses.fields(Made)] == [
        f.name for f in dataclasses.fields(Reference)]
    assert Made.__match_args__ == Reference.__match_args__
    assert not hasattr(made, "__dict__")
    assert Made.__dataclass_params__.frozen and Made.__dataclass_params__.eq
    assert str(inspect.signature(Made)) == str(inspect.signature(Reference))
    assert made.label() == "a:0"
    with pytest.raises(TypeError):
        Made("a")  # keyword-only
    with pytest.raises(TypeError):
        Made()  # name is required
    assert Made(name="a").tags is not Made(name="b").tags  # a fresh default per instance


def test_a_record_refuses_changes_as_a_frozen_dataclass_does() -> None:
    made, ref = _pair(name="a")
    for target in (made, ref):
        with pytest.raises(FrozenInstanceError, match="cannot assign to field 'name'"):
            target.name = "b"
        with pytest.raises(FrozenInstanceError, match="cannot delete field 'count'"):
            del target.count
    # Any other name too (a slotted frozen dataclass raises TypeError there instead: its
    # __setattr__ names the class it had before its slots were added).
    with pytest.raises(FrozenInstanceError, match="cannot assign to field 'other'"):
        made.other = 1
    assert made.name == "a"


def test_a_record_pickles_copies_and_replaces() -> None:
    made = Made(name="a", count=2, tags=["x"], secret="s", note="n", weight=1.5, extra={"k": 1})
    for twin in (pickle.loads(pickle.dumps(made)), copy.copy(made), copy.deepcopy(made)):
        assert twin == made and twin is not made
        assert (twin.secret, twin.note, twin.weight) == ("s", "n", 1.5)
    changed = dataclasses.replace(made, count=3)
    assert changed.count == 3 and changed.tags == ["x"] and made.count == 2


build_made = builder(Made)


@given(values)
def test_a_builder_builds_what_the_class_builds(given_values: dict[str, Any]) -> None:
    built, made = build_made(**given_values), Made(**given_values)
    assert type(built) is Made
    assert built == made and hash(built) == hash(made) and repr(built) == repr(made)
    assert dataclasses.asdict(built) == dataclasses.asdict(made)
    # (by repr: a NaN weight equals itself only as the same object)
    assert repr(pickle.loads(pickle.dumps(built))) == repr(made)
    assert repr(dataclasses.replace(built, count=7)) == repr(dataclasses.replace(made, count=7))


def test_a_built_record_is_frozen_and_takes_defaults_as_the_class_does() -> None:
    built = build_made(name="a")
    assert (built.count, built.tags, built.secret, built.extra) == (0, [], "", None)
    assert build_made(name="a").tags is not built.tags  # a fresh default per instance
    with pytest.raises(FrozenInstanceError, match="cannot assign to field 'name'"):
        built.name = "b"
    with pytest.raises(FrozenInstanceError, match="cannot delete field 'count'"):
        del built.count
    assert built.label() == "a:0"
    with pytest.raises(TypeError):
        build_made()  # name is required
    with pytest.raises(TypeError):
        build_made(name="a", colour="red")  # no such field
    with pytest.raises(TypeError):
        build_made("a")  # keyword-only


def test_the_engine_s_builders_match_their_classes() -> None:
    from engine.contracts.blocks import BlockContext, BlockResult, block_context, block_result
    from engine.contracts.events import InputRecord, StepEvent, input_record, step_event
    from engine.contracts.values import LoopFrame, Payload, StepStatus

    payload = Payload.json({"n": 1})
    assert type(payload) is Payload and payload == Payload(kind="json", data={"n": 1})
    event = {"step_id": "s", "block_id": "b", "block_type": "function", "label": "B",
             "status": StepStatus.RUNNING, "scope": (LoopFrame(container_id="l", iteration=1),),
             "outputs": {"out": payload}}
    context = {"run_id": "r", "step_id": "s", "block_id": "b", "block_type": "t",
               "label": "l", "attempt": 2}
    for build, cls, fields_ in (
            (step_event, StepEvent, event), (input_record, InputRecord, {"payload": payload}),
            (block_result, BlockResult, {"artifact": {"operation": "x"}}),
            (block_context, BlockContext, context)):
        built = build(**fields_)
        assert type(built) is cls and built == cls(**fields_), cls


def test_what_a_builder_cannot_build() -> None:
    @record
    class Own:
        a: int

        def __init__(self, *, a: int) -> None:  # a body's own __init__ may do more
            object.__setattr__(self, "a", a * 2)

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            if self.a < 0:
                raise ValueError("a < 0")

    for refused in (Own, Checked, dict, dataclass(kw_only=True)(_shape("Mutable"))):
        with pytest.raises(TypeError, match="builder needs a @record class"):
            builder(refused)
    @record
    class Clashing:
        built_: int

    with pytest.raises(TypeError, match="a name builder uses itself"):
        builder(Clashing)
    # a frozen, slotted dataclass that only stores its fields builds as a record does
    assert builder(Reference)(name="a", count=2) == Reference(name="a", count=2)


def test_a_record_repr_stops_at_a_cycle() -> None:
    made = Made(name="a", extra=[])
    made.extra.append(made)
    ref = Reference(name="a", extra=[])
    ref.extra.append(ref)
    assert repr(made).replace("Made", "Reference", 1) == repr(ref)


def test_methods_the_body_defines_are_kept() -> None:
    @record
    class Own:
        value: int

        def __repr__(self) -> str:
            return "own"

        def __eq__(self, other: object) -> bool:
            return True

        def __hash__(self) -> int:
            return 7

    @record
    class Built:
        value: int

        def __init__(self, value: int = 5) -> None:
            object.__setattr__(self, "value", value * 2)

    assert Built().value == 10 and Built(value=2).value == 4
    assert repr(Own(value=1)) == "own"
    assert Own(value=1) == Own(value=2)
    assert hash(Own(value=1)) == 7

    @record
    class EqOnly:
        value: int

        def __eq__(self, other: object) -> bool:
            return False

    assert hash(EqOnly(value=1)) == hash((1,))  # as dataclass: a frozen class hashes fields


def test_a_record_without_fields_or_docstring() -> None:
    @record
    class Empty:
        pass

    @dataclass(frozen=True, slots=True, kw_only=True)
    class EmptyReference:
        pass

    assert Empty() == Empty() and hash(Empty()) == hash(EmptyReference())
    assert repr(Empty()).endswith("Empty()")
    assert Empty.__doc__ == "Empty()" == EmptyReference.__doc__.replace("Reference", "")


def test_what_a_record_cannot_be() -> None:
    with pytest.raises(TypeError, match="__post_init__"):
        @record
        class Checked:
            value: int

            def __post_init__(self) -> None:
                pass

    with pytest.raises(TypeError, match="dataclass base"):
        @record
        class Derived(Reference):
            more: int = 0

    with pytest.raises(TypeError, match="__setattr__"):
        @record
        class Mutable:
            value: int

            def __setattr__(self, name: str, value: Any) -> None:
                pass

    with pytest.raises(TypeError, match="every field in __init__"):
        @record
        class Computed:
            value: int = field(init=False, default=0)


def test_stepwell_declares_its_frozen_dataclasses_as_records() -> None:
    """A frozen, slotted, keyword-only dataclass built by ``dataclass`` costs a cold start
    six compiled methods: every such class of engine/, blocks/ and store/ is a record."""
    frozen_setattr = Made.__setattr__.__code__
    records, others = 0, []
    for package in ("engine", "blocks", "store"):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if info.name.endswith("migrations.env"):
                continue  # run by Alembic only
            module = importlib.import_module(info.name)
            for value in vars(module).values():
                if (not isinstance(value, type) or value.__module__ != info.name
                        or not dataclasses.is_dataclass(value)):
                    continue
                if getattr(value.__setattr__, "__code__", None) is frozen_setattr:
                    records += 1
                elif (value.__dataclass_params__.frozen and "__slots__" in vars(value)
                      and all(f.kw_only for f in dataclasses.fields(value))):
                    others.append(f"{info.name}.{value.__qualname__}")
    assert others == []
    assert records > 100
