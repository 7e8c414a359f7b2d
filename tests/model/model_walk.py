"""Test helper: walk botocore's Batch request shapes and build requests from them.

Every ``(structure, member)`` reachable from SubmitJob and RegisterJobDefinition
with the path to it, a minimal valid value for any shape, and a request with one
value placed at a path. Used by the constraint, schema-agreement and policy tests,
so each is generated from the model instead of listing fields by hand.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.model import Shape, StructureShape

from controller.model.constraints import Rule, member_rules
from controller.model.manifests import Kind, input_shape

# A path step: a structure member's name, 0 for a list's first item, or ("key", k) in a map.
Step = str | int | tuple[str, str]
MAP_KEY = "k"


@dataclass(frozen=True)
class Place:
    """One member of one structure (or an item of a list or value of a map member, then
    ``owner`` and ``member`` are None), reachable from a request, and the path to it."""

    kind: Kind
    owner: str | None
    member: str | None
    shape: Shape
    path: tuple[Step, ...]

    @property
    def field(self) -> str:
        return field_name(self.path)


def field_name(path: tuple[Step, ...]) -> str:
    """The field as validate names it: ``a.b[0].c``, a map entry as ``tags.k``."""
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        elif isinstance(step, tuple):
            out += f".{step[1]}"
        else:
            out = f"{out}.{step}" if out else step
    return out


def places(kind: Kind) -> Iterator[Place]:
    """Every member of every structure reachable from the request (each structure once,
    at the first path that reaches it, breadth first)."""
    seen: set[str] = set()
    queue: list[tuple[StructureShape, tuple[Step, ...]]] = [(input_shape(kind), ())]
    while queue:
        structure, path = queue.pop(0)
        if structure.name in seen:
            continue
        seen.add(structure.name)
        for name, member in structure.members.items():
            member_path = (*path, name)
            yield Place(kind, structure.name, name, member, member_path)
            yield from _items(kind, member, member_path)
            queue.extend(_structures_under(member, member_path))


def _items(kind: Kind, shape: Shape, path: tuple[Step, ...]) -> Iterator[Place]:
    """The items of a list and values of a map that are not structures."""
    inner: Shape | None = None
    if shape.type_name == "list":
        inner, path = shape.member, (*path, 0)  # type: ignore[attr-defined]
    elif shape.type_name == "map":
        inner, path = shape.value, (*path, ("key", MAP_KEY))  # type: ignore[attr-defined]
    if inner is not None and not isinstance(inner, StructureShape):
        yield Place(kind, None, None, inner, path)
        yield from _items(kind, inner, path)


def _structures_under(
    shape: Shape, path: tuple[Step, ...]
) -> Iterator[tuple[StructureShape, tuple[Step, ...]]]:
    if isinstance(shape, StructureShape):
        yield shape, path
    elif shape.type_name == "list":
        yield from _structures_under(shape.member, (*path, 0))  # type: ignore[attr-defined]
    elif shape.type_name == "map":
        yield from _structures_under(shape.value, (*path, ("key", MAP_KEY)))  # type: ignore[attr-defined]


def _bound(rules: tuple[Rule, ...], keyword: str) -> Any:
    return next((rule.value for rule in rules if rule.keyword == keyword), None)


def minimal(shape: Shape, owner: str | None = None, member: str | None = None) -> Any:
    """The smallest value validate accepts for ``shape`` as ``owner.member``."""
    rules = member_rules(owner, member, shape).rules
    kind = shape.type_name
    if isinstance(shape, StructureShape):
        return {
            name: minimal(shape.members[name], shape.name, name) for name in shape.required_members
        }
    if kind == "list":
        count = _bound(rules, "minItems") or 0
        return [minimal(shape.member) for _ in range(count)]  # type: ignore[attr-defined]
    if kind == "map":
        count = _bound(rules, "minProperties") or 0
        return {f"{MAP_KEY}{i}": minimal(shape.value) for i in range(count)}  # type: ignore[attr-defined]
    if kind == "string":
        enum = _bound(rules, "enum") or _bound(rules, "enumIgnoringCase")
        return enum[0] if enum else "x" * max(_bound(rules, "minLength") or 1, 1)
    if kind in ("integer", "long"):
        low = _bound(rules, "minimum")
        return 1 if low is None else max(low, 1)
    if kind in ("float", "double"):
        return 1.0
    if kind == "boolean":
        return True
    raise AssertionError(f"no minimal value for {kind}")


def place_value(kind: Kind, path: tuple[Step, ...], value: Any) -> dict[str, Any]:
    """A minimal valid request of ``kind`` with ``value`` at ``path`` (parents minimal)."""
    root = input_shape(kind)
    request: dict[str, Any] = minimal(root)
    container: Any = request
    shape: Shape = root
    for index, step in enumerate(path):
        last = index == len(path) - 1
        if isinstance(step, str):
            assert isinstance(shape, StructureShape)
            child = shape.members[step]
            if last:
                container[step] = value
                return request
            if step not in container:
                container[step] = _fresh(child, shape.name, step)
            container, shape = container[step], child
        elif isinstance(step, int):
            item = shape.member  # type: ignore[attr-defined]
            if last:
                container[:] = [value]
                return request
            if not container:
                container.append(_fresh(item))
            container, shape = container[0], item
        else:
            value_shape = shape.value  # type: ignore[attr-defined]
            container.clear()
            if last:
                container[step[1]] = value
                return request
            container[step[1]] = _fresh(value_shape)
            container, shape = container[step[1]], value_shape
    return request


def _fresh(shape: Shape, owner: str | None = None, member: str | None = None) -> Any:
    value = minimal(shape, owner, member)
    if isinstance(value, list) and not value:
        value = [minimal(shape.member)]  # type: ignore[attr-defined]
    return copy.deepcopy(value)


def all_places(kind: Kind) -> Iterator[Place]:
    """Every member at every path of the request (a structure shared by several places
    is visited at each of them; a structure already on the current path is not entered
    again, so recursive shapes end)."""

    def walk(shape: Shape, path: tuple[Step, ...], stack: frozenset[str]) -> Iterator[Place]:
        if isinstance(shape, StructureShape):
            if shape.name in stack:
                return
            for name, member in shape.members.items():
                member_path = (*path, name)
                yield Place(kind, shape.name, name, member, member_path)
                yield from walk(member, member_path, stack | {shape.name})
        elif shape.type_name == "list":
            yield from walk(shape.member, (*path, 0), stack)  # type: ignore[attr-defined]
        elif shape.type_name == "map":
            yield from walk(shape.value, (*path, ("key", MAP_KEY)), stack)  # type: ignore[attr-defined]

    yield from walk(input_shape(kind), (), frozenset())
