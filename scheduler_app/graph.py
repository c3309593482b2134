"""Cycles in the dependency graph, as plain data: job id -> the ids it depends on."""

from __future__ import annotations

from collections.abc import Iterable


def edges(pairs: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    """{downstream: [upstream, ...]} from (downstream, upstream) pairs."""
    found: dict[int, list[int]] = {}
    for downstream, upstream in pairs:
        found.setdefault(downstream, []).append(upstream)
    return found


def find_cycle(upstreams: dict[int, list[int]], start: int) -> list[int] | None:
    """The ids along a path that leads from ``start`` back to it, ``start`` at both ends;
    None when there is none."""
    path: list[int] = []
    seen: set[int] = set()

    def visit(node: int) -> bool:
        if node == start and path:
            return True
        if node in seen:
            return False
        seen.add(node)
        path.append(node)
        if any(visit(up) for up in upstreams.get(node, [])):
            return True
        path.pop()
        return False

    return [*path, start] if visit(start) else None
