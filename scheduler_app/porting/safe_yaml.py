"""YAML read as data only, within bounds.

``yaml.safe_load``'s loader (no Python tags: ``!!python/object`` is an error), with a
cap on the values a document stands for once its aliases are expanded, so that a
"billion laughs" file (aliases of aliases) is refused before anything walks it, on
how often aliases may be used, and on nesting depth, so that ``[[[[...]]]]`` cannot
exhaust the stack.
"""

from __future__ import annotations

from typing import Any

import yaml

from scheduler_app.porting.items import FileError

MAX_NODES = 200_000
MAX_ALIASES = 1_000
MAX_DEPTH = 64


class BoundedSafeLoader(yaml.SafeLoader):
    """Dates and times stay text (as JSON has them): the API reads them from strings."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.nodes = 0
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise FileError(f"the YAML uses aliases more than {MAX_ALIASES} times.")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise FileError(f"the YAML holds more than {MAX_NODES} values.")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise FileError(f"the YAML nests more than {MAX_DEPTH} levels deep.")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


BoundedSafeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_all(text: str) -> list[tuple[Any, yaml.Node | None]]:
    """Every document of ``text``, with the node it was built from (for line numbers);
    FileError saying where it is not YAML or breaks a bound."""
    loader = BoundedSafeLoader(text)
    try:
        documents = []
        while loader.check_node():
            node = loader.get_node()
            if expanded_size(node) > MAX_NODES:
                raise FileError(
                    f"the YAML holds more than {MAX_NODES} values once its aliases are "
                    'expanded (a "billion laughs" file?).'
                )
            documents.append((loader.construct_document(node), node))
        return documents
    except yaml.YAMLError as exc:
        raise FileError(f"not valid YAML: {_short(exc)}") from None
    except RecursionError:
        raise FileError(f"the YAML nests more than {MAX_DEPTH} levels deep.") from None
    finally:
        loader.dispose()


def expanded_size(node: yaml.Node | None) -> int:
    """The values ``node`` stands for with every alias expanded, counted without expanding
    them: each node's size once (by identity), children before parents."""
    if node is None:
        return 0
    sizes: dict[int, int] = {}
    pending: list[tuple[yaml.Node, bool]] = [(node, False)]
    while pending:
        current, children_done = pending.pop()
        if id(current) in sizes:
            continue
        children = _children(current)
        if children_done:
            sizes[id(current)] = min(1 + sum(sizes[id(c)] for c in children), MAX_NODES + 1)
            continue
        pending.append((current, True))
        pending.extend((child, False) for child in children if id(child) not in sizes)
    return sizes[id(node)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def item_lines(node: yaml.Node | None, key: str) -> list[int | None]:
    """The 1-based line where each item of the list under ``key`` starts (a mapping's)."""
    if not isinstance(node, yaml.MappingNode):
        return []
    for key_node, value in node.value:
        if key_node.value == key and isinstance(value, yaml.SequenceNode):
            return [child.start_mark.line + 1 for child in value.value]
    return []


def entry_lines(node: yaml.Node | None, key: str) -> dict[str, int]:
    """The 1-based line of each key of the mapping under ``key``."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    for key_node, value in node.value:
        if key_node.value == key and isinstance(value, yaml.MappingNode):
            return {str(k.value): k.start_mark.line + 1 for k, _ in value.value}
    return {}


def _short(exc: yaml.YAMLError) -> str:
    text = " ".join(str(exc).split())
    return text[:300]
