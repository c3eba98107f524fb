"""Read-only tables of named things (primitives, recipes), built explicitly.

:class:`NamedTable` is a :class:`~collections.abc.Mapping` from each item's
``name`` to the item, filled once from an iterable (no import side effects,
no global to patch), or named up front with each item made on first access
(:meth:`NamedTable.lazy`: a command imports only what it uses); its
:meth:`~NamedTable.get` raises the subclass's error type with a message that
lists the valid names.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Callable

from .errors import GmosError

__all__ = ["NamedTable"]


class NamedTable(Mapping):
    """A read-only mapping of ``item.name`` to item.

    Subclasses set :attr:`kind` (the word for an item in messages),
    :attr:`error` (raised by :meth:`get` for an unknown name) and, optionally,
    :attr:`item_type` (every item must be an instance of it).

    Parameters
    ----------
    items : iterable
        Objects with a ``name`` attribute; two with the same name are an error.

    Raises
    ------
    ValueError
        If two items have the same name.
    TypeError
        If an item is not an :attr:`item_type`.
    """

    kind: str = "item"
    error: type[GmosError] = GmosError
    item_type: type | None = None

    def __init__(self, items: Iterable):
        table: dict[str, Any] = {}
        for item in items:
            if self.item_type is not None and not isinstance(item, self.item_type):
                raise TypeError(f"not a {self.item_type.__name__}: {item!r}")
            if item.name in table:
                raise ValueError(f"two {self.kind}s are named {item.name!r}")
            table[item.name] = item
        self._table = MappingProxyType(table)

    @classmethod
    def lazy(cls, names: Iterable[str], make: Callable[[str], Any]) -> "NamedTable":
        """A table of ``names`` whose items are made by ``make(name)`` on first access.

        Iterating, ``len`` and ``in`` need only the names; an item is made
        (and checked as in the constructor) the first time it is looked up.

        Raises
        ------
        ValueError
            If two names are the same.
        """
        table = cls.__new__(cls)
        table._table = _LazyItems(names, make, cls)
        return table

    def __getitem__(self, name: str) -> Any:
        return self._table[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, name: object) -> bool:
        return name in self._table

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {', '.join(self._table)}>"

    def get(self, name: str) -> Any:  # type: ignore[override]
        """The item called ``name``.

        Raises
        ------
        GmosError
            (the subclass's :attr:`error`) If there is none; the message lists the valid names.
        """
        try:
            return self._table[name]
        except KeyError:
            raise self.error(f"unknown {self.kind} {name!r}; valid {self.kind}s are: "
                             + ", ".join(sorted(self._table))) from None


class _LazyItems(Mapping):
    """``name -> make(name)``, made once on first access and checked like a table's items."""

    def __init__(self, names: Iterable[str], make: Callable[[str], Any], table: type):
        self._names = tuple(names)
        if len(set(self._names)) != len(self._names):
            raise ValueError(f"two {table.kind}s have the same name in {self._names}")
        self._make, self._table, self._made = make, table, {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._made:
            if name not in self._names:
                raise KeyError(name)
            item = self._make(name)
            kind = self._table.item_type
            if kind is not None and not isinstance(item, kind):
                raise TypeError(f"not a {kind.__name__}: {item!r}")
            if item.name != name:
                raise ValueError(f"the {self._table.kind} made for {name!r} is named {item.name!r}")
            self._made[name] = item
        return self._made[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names
