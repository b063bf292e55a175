"""Tiny name -> object registries (big_vision / scenic style).

Models, datasets, methods and evaluators are looked up by the names used in
config files, so adding one is a decorator plus an import.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from jaxunlearn.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
  """A mapping from lower-case names to objects, with helpful errors."""

  def __init__(self, kind: str):
    self.kind = kind
    self._items: dict[str, T] = {}

  def register(self, name: str) -> Callable[[T], T]:
    def decorator(obj: T) -> T:
      self.add(name, obj)
      return obj
    return decorator

  def add(self, name: str, obj: T) -> None:
    if name in self._items:
      raise ValueError(f"{self.kind} {name!r} is registered twice")
    self._items[name] = obj

  def get(self, name: str) -> T:
    try:
      return self._items[name]
    except KeyError:
      known = ", ".join(sorted(self._items))
      raise UserError(
          f"unknown {self.kind} {name!r}; choose one of: {known} "
          f"(see `jaxunlearn {self.kind}s`)") from None

  def names(self) -> list[str]:
    return sorted(self._items)

  def __contains__(self, name: str) -> bool:
    return name in self._items

  def __iter__(self) -> Iterator[str]:
    return iter(self.names())
