"""Frozen value classes without :mod:`dataclasses`: the base :class:`Record`.

The events of the machines (``client_events``), the plain data of the protocol
(``types``) and the endpoints (``nbdtui.uri``) are on the path of every one-shot command
(``nbdtui info``, a small ``read``). A frozen dataclass costs about 0.45 ms to define (it
compiles and runs the source of its generated methods), and ``dataclasses`` imports
``inspect`` (4 ms): the sixteen of them on that path and inspect were 86 of the 154 M
instructions that ``nbdtui info`` ran beyond the interpreter's own start-up. A
:class:`Record` is a class with ``__slots__`` and a hand-written ``__init__``, defined
in microseconds.

A subclass lists its fields, in order, as its ``_fields`` and its ``__slots__``
(``_fields = ("a", "b")``, ``__slots__ = _fields``, and an annotation each) and stores
them in ``__init__`` through ``self._set``, the slot descriptors' setters in that order
(``s = self._set; s[0](self, a); s[1](self, b)``): faster than the ``object.__setattr__``
of a frozen dataclass's ``__init__`` (300 against 430 ns for three fields, here).
The base gives, from the fields, what a frozen dataclass generates: ``__repr__``,
``__eq__`` (same class, equal fields), ``__hash__``, ``__match_args__``, copying and
pickling, and :meth:`Record.replace` in place of ``dataclasses.replace``. Assigning or
deleting an attribute raises ``AttributeError``; mypy knows them as frozen dataclasses
(``dataclass_transform``), so it refuses the assignment too.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any, ClassVar, Self, cast, dataclass_transform

__all__ = ["Record", "SlotSetter", "slot_setters"]

#: The ``__set__`` of a slot descriptor: (instance, value) -> None.
SlotSetter = Callable[[object, object], None]


def slot_setters(cls: type, *names: str) -> tuple[SlotSetter, ...]:
    """The slot descriptors' ``__set__`` of ``names`` in ``cls``, for fast constructors.

    Storing through the slot descriptors builds a frozen object in well under half the
    time of ``object.__setattr__`` (which a frozen dataclass's ``__init__`` calls).
    """
    return tuple(cast(SlotSetter, vars(cls)[name].__set__) for name in names)


@dataclass_transform(frozen_default=True)
class Record:
    """Base of frozen, slotted value classes; the fields are the class's own ``__slots__``."""

    __slots__ = ()
    #: the field names, in order (the class's own ``__slots__``)
    _fields: ClassVar[tuple[str, ...]] = ()
    #: the setters of the fields' slots, in the same order (for ``__init__``)
    _set: ClassVar[tuple[SlotSetter, ...]] = ()
    #: reads what equality and the hash are made of (see __init_subclass__)
    _key: ClassVar[Callable[[object], object]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields = vars(cls).get("_fields", ())
        cls._fields = fields
        cls._set = slot_setters(cls, *fields)
        # What __eq__ and __hash__ compare, read in C: the fields (a tuple when there are
        # several, the value when one); without fields, the class (all are equal).
        cls._key = attrgetter(*fields) if fields else attrgetter("__class__")
        type.__setattr__(cls, "__match_args__", fields)

    def _values(self) -> tuple[object, ...]:
        return tuple([getattr(self, name) for name in self._fields])

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        key = type(self)._key
        return key(self) == key(other)

    def __hash__(self) -> int:
        return hash(type(self)._key(self))

    def __reduce__(self) -> tuple[type[Self], tuple[object, ...]]:
        # copy, deepcopy and pickle: the fields, positionally, to __init__ again
        return type(self), self._values()

    def replace(self, **changes: object) -> Self:
        """A copy with ``changes`` (as ``dataclasses.replace``: ``__init__`` checks them)."""
        values = {name: getattr(self, name) for name in self._fields}
        values.update(changes)
        return type(self)(**values)

    if not TYPE_CHECKING:  # mypy knows the fields as frozen from dataclass_transform

        def __setattr__(self, name, value):
            raise AttributeError(f"cannot assign to field {name!r} of {type(self).__name__}")

        def __delattr__(self, name):
            raise AttributeError(f"cannot delete field {name!r} of {type(self).__name__}")
