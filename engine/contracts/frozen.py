"""``@record``: stepwell's frozen, slotted, keyword-only dataclasses, cheap to declare.

``@record`` makes the class ``@dataclass(frozen=True, slots=True, kw_only=True)`` makes:
the same fields (``dataclasses.fields``, ``replace`` and ``asdict`` work), immutable
(``FrozenInstanceError``), equal and hashable by the values of its fields, printed,
pickled and copied alike. Only the way its methods are made differs:

* ``dataclass`` writes each of ``__init__``, ``__repr__``, ``__eq__``, ``__hash__``,
  ``__setattr__`` and ``__delattr__`` as source text and compiles it: six ``exec`` calls
  per class. stepwell declares over a hundred such classes, and a cold ``stepwell run``
  spent a tenth of its instructions compiling those methods
  (``docs/performance.md``);
* ``record`` compiles only ``__init__`` (:func:`slot_init`, which also builds an instance
  faster than a frozen dataclass's ``__init__`` does) and gives the other five as
  closures over the class's field names.

A record has no ``__post_init__`` and no dataclass base (:func:`record` says so at import),
and every field is set by ``__init__``.

:func:`builder` gives a record a second constructor, a plain function that builds the
same object about twice as fast as calling the class (which packs and unpacks its
keywords in a dict): the engine uses it for the few records it builds several times per
step (step events, block contexts and results, tasks, payloads).
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable
from dataclasses import (
    MISSING,
    FrozenInstanceError,
    dataclass,
    field,
    fields,
    is_dataclass,
)
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform

_T = TypeVar("_T")


class _Factory:
    """The default of a field that has a default factory, as ``__init__``'s signature
    shows it (``<factory>``, as dataclass shows it)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def slot_init(cls: type) -> Callable[..., None]:
    """An ``__init__`` for the frozen, slotted, keyword-only dataclass ``cls`` that stores
    each field through its slot's own setter.

    The ``__init__`` dataclasses generates for a frozen class calls
    ``object.__setattr__`` per field, which costs about twice as much; step records are
    built several times per step. The instance is the same either way: immutable, equal,
    printed and ``dataclasses.replace``-able alike. :func:`record` gives every record this
    ``__init__``; a plain dataclass may take it too (declared with ``init=False``, so that
    importing it does not also compile the ``__init__`` this one replaces).

    Args:
        cls: the dataclass (every field in ``__init__``, no ``__post_init__``).

    Returns:
        The function to assign to ``cls.__init__``, or to call on ``object.__new__(cls)``.

    Raises:
        TypeError: ``cls`` is not slotted, has a ``__post_init__`` or a field that
            ``__init__`` does not set.
    """
    if hasattr(cls, "__post_init__") or not hasattr(cls, "__slots__"):
        raise TypeError(f"{cls.__name__}: slot_init needs a slotted class without __post_init__")
    namespace: dict[str, Any] = {"_FACTORY": _FACTORY}
    params: list[str] = []
    body: list[str] = []
    for item in fields(cls):
        name = item.name
        if not item.init:
            raise TypeError(f"{cls.__name__}.{name}: slot_init needs every field in __init__")
        params.append(_parameter(item, namespace, body))
        namespace[f"_set_{name}"] = cls.__dict__[name].__set__
        body.append(f"    _set_{name}(self, {name})\n")
    signature = f"self, *, {', '.join(params)}" if params else "self"
    source = f"def __init__({signature}):\n{''.join(body) or '    pass'}"
    exec(source, namespace)  # noqa: S102 - code built from the field names above
    init: Callable[..., None] = namespace["__init__"]
    init.__annotations__ = {item.name: item.type for item in fields(cls)} | {"return": None}
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    return init


def _parameter(item: Any, namespace: dict[str, Any], body: list[str]) -> str:
    """The keyword parameter of dataclass field ``item`` in a generated constructor: its
    default goes in ``namespace``, and a default factory's call in ``body``."""
    name = item.name
    if item.default is not MISSING:
        namespace[f"_default_{name}"] = item.default
        return f"{name}=_default_{name}"
    if item.default_factory is not MISSING:
        namespace[f"_factory_{name}"] = item.default_factory
        body.append(f"    if {name} is _FACTORY:\n        {name} = _factory_{name}()\n")
        return f"{name}=_FACTORY"
    return str(name)


def builder(cls: type[_T]) -> Callable[..., _T]:
    """A function that builds ``cls`` records as ``cls(**fields)`` does, about twice as
    fast: for the few records the engine builds several times per step.

    Calling a class with keyword arguments packs them into a dict, which ``__init__``
    unpacks again, and a frozen record then stores each field through its slot's setter.
    The builder is a plain function (keywords arrive without a dict): it makes the
    object as a *mutable twin* of ``cls`` (a sibling class with the same bases and
    slots, so the same memory layout), stores the fields as ordinary attributes, then
    makes the object a ``cls`` (``__class__`` assignment, which CPython allows between
    classes of one layout). The result is a ``cls`` in every way (type, equality,
    hash, repr, immutability, pickling, ``dataclasses.replace``); the twin is never
    seen outside the builder.

    Args:
        cls: a :func:`record` class (or a frozen, slotted dataclass) whose ``__init__``
            only stores the fields: the generated one, no ``__post_init__`` (a class
            body's own ``__init__`` may do more).

    Returns:
        ``build(**fields) -> cls``, keyword-only, with the class's defaults and
        default factories; a missing or unknown keyword raises TypeError.

    Raises:
        TypeError: ``cls`` is not such a record.
    """
    params = getattr(cls, "__dataclass_params__", None)
    init = cls.__dict__.get("__init__")
    code = getattr(init, "__code__", None)
    if (params is None or not params.frozen or "__slots__" not in cls.__dict__
            or hasattr(cls, "__post_init__")
            or getattr(init, "__qualname__", "") != f"{cls.__qualname__}.__init__"
            or code is None or code.co_filename != "<string>"):  # generated, not the body's
        raise TypeError(f"{cls.__name__}: builder needs a @record class (or a frozen, "
                        "slotted dataclass) whose generated __init__ only stores fields")
    slots = cls.__dict__["__slots__"]
    twin = type(f"_{cls.__name__}Builder", cls.__bases__, {"__slots__": slots})
    namespace: dict[str, Any] = {"_FACTORY": _FACTORY, "_new_": object.__new__,
                                 "_twin_": twin, "_cls_": cls}
    params_: list[str] = []
    body: list[str] = []
    for item in fields(cls):  # type: ignore[arg-type]  # a dataclass, which _T cannot say
        name = item.name
        if name in namespace or name == "built_" or name.startswith(("_default_", "_factory_")):
            raise TypeError(f"{cls.__name__}.{name}: a name builder uses itself")
        params_.append(_parameter(item, namespace, body))
        body.append(f"    built_.{name} = {name}\n")
    signature = f"*, {', '.join(params_)}" if params_ else ""
    source = (f"def build({signature}):\n    built_ = _new_(_twin_)\n{''.join(body)}"
              "    built_.__class__ = _cls_\n    return built_\n")
    exec(source, namespace)  # noqa: S102 - code built from the field names above
    build: Callable[..., _T] = namespace["build"]
    build.__name__ = f"build_{cls.__name__}"
    build.__qualname__ = f"builder({cls.__qualname__})"
    build.__module__ = cls.__module__
    build.__doc__ = f"Build a {cls.__name__} (as {cls.__name__}(**fields) does, faster)."
    return build


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(field,))
def record(cls: type[_T]) -> type[_T]:
    """Make ``cls`` a frozen, slotted, keyword-only dataclass (see the module docstring).

    Methods the class body defines itself are kept, as ``dataclass`` keeps them (a body
    that defines ``__setattr__`` or ``__delattr__`` is refused, as ``dataclass`` refuses
    it for a frozen class).

    Raises:
        TypeError: the class has a ``__post_init__``, a dataclass base, a field that
            ``__init__`` does not set, or its own ``__setattr__``/``__delattr__``.
    """
    own = cls.__dict__
    if "__post_init__" in own or any(is_dataclass(base) for base in cls.__mro__[1:]):
        raise TypeError(f"{cls.__name__}: a record has no __post_init__ and no dataclass "
                        "base; declare it with @dataclass(frozen=True, slots=True, kw_only=True)")
    for name in ("__setattr__", "__delattr__"):
        if name in own:
            raise TypeError(f"Cannot overwrite attribute {name} in class {cls.__name__}")
    documented = own.get("__doc__") is not None
    class_hash = own.get("__hash__", MISSING)  # None when the body defines only __eq__
    explicit_hash = not (class_hash is MISSING or (class_hash is None and "__eq__" in own))
    made: type[_T] = dataclass(cls, init=False, repr=False, eq=False, slots=True,
                               kw_only=True)
    every = fields(made)  # type: ignore[arg-type]  # a dataclass now, which _T cannot say
    names = frozenset(item.name for item in every)
    shown = tuple(item.name for item in every if item.repr)
    shown_values = _values(shown)
    compared = _values(tuple(item.name for item in every if item.compare))
    hashed = _values(tuple(item.name for item in every
                           if (item.compare if item.hash is None else item.hash)))

    @reprlib.recursive_repr()
    def __repr__(self: Any) -> str:
        pairs = [f"{name}={value!r}" for name, value in zip(shown, shown_values(self))]
        return f"{self.__class__.__qualname__}({', '.join(pairs)})"

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is self.__class__:
            return compared(self) == compared(other)  # type: ignore[no-any-return]
        return NotImplemented

    def __hash__(self: Any) -> int:
        return hash(hashed(self))

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is made or name in names:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(made, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is made or name in names:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(made, self).__delattr__(name)

    def __getstate__(self: Any) -> list[Any]:  # pickling and copying: as dataclass does
        return [getattr(self, item.name) for item in fields(self)]

    def __setstate__(self: Any, state: list[Any]) -> None:
        for item, value in zip(fields(self), state, strict=False):
            object.__setattr__(self, item.name, value)

    methods: dict[str, Callable[..., Any]] = {
        "__repr__": __repr__, "__eq__": __eq__, "__setattr__": __setattr__,
        "__delattr__": __delattr__, "__getstate__": __getstate__, "__setstate__": __setstate__,
    }
    if "__init__" not in own:
        methods["__init__"] = slot_init(made)
    if not explicit_hash:
        methods["__hash__"] = __hash__
    for name, method in methods.items():
        if name in own and name != "__hash__":  # (__hash__: see explicit_hash)
            continue  # the body's own, as dataclass keeps it
        method.__qualname__ = f"{made.__qualname__}.{name}"
        method.__module__ = made.__module__
        setattr(made, name, method)
    params = made.__dataclass_params__  # type: ignore[attr-defined]
    params.init = params.repr = params.eq = params.frozen = True
    if not documented:  # as dataclass documents a class that has no docstring
        import inspect

        made.__doc__ = f"{made.__name__}{inspect.signature(made)}".replace(" -> None", "")
    return made


def _values(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """A function of a record returning the values of the fields ``names``, as a tuple."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return lambda obj: ()
