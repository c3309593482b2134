"""Node labels and label selectors, as Kubernetes writes them.

Labels are ``key=value`` pairs (``role=db,zone=eu``). A selector is requirements
joined by commas, all of which must hold (AND)::

    role=db            role==db          role!=db
    zone in (eu,us)    zone notin (eu)   gpu (the key exists)   !gpu (it does not)

Errors name the position (counted from 1) where the text stops making sense.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

KEY = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?")
VALUE = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?")
MAX_LABELS = 64
MAX_SELECTOR = 2000  # characters
TOKEN = re.compile(r"\s*(?:(?P<op>==|!=|=|!|\(|\)|,)|(?P<word>[A-Za-z0-9._/-]+))")


class SelectorError(ValueError):
    """A selector or a set of labels that does not parse; the message says where."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        if self.op == "exists":
            return has
        if self.op == "!exists":
            return not has
        if self.op in ("=", "in"):
            return has and labels[self.key] in self.values
        return not has or labels[self.key] not in self.values  # "!=", "notin"


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(req.matches(labels) for req in self.requirements)


def parse_labels(text: str) -> dict[str, str]:
    """``"role=db,zone=eu"`` as a dict; an empty text is no labels."""
    labels: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise SelectorError(f"label {part!r} is not key=value.")
        labels[key.strip()] = value.strip()
    return check_labels(labels)


def check_labels(labels: object) -> dict[str, str]:
    """Labels as stored: a dict of label-safe keys to label-safe values."""
    if not isinstance(labels, dict):
        raise SelectorError("labels must be an object of key: value.")
    if len(labels) > MAX_LABELS:
        raise SelectorError(f"at most {MAX_LABELS} labels.")
    for key, value in labels.items():
        if not isinstance(key, str) or not KEY.fullmatch(key):
            raise SelectorError(
                f"label key {key!r} must be 1-63 letters, digits, '.', '_', '-' or '/', "
                "starting and ending with a letter or digit."
            )
        if not isinstance(value, str) or not VALUE.fullmatch(value):
            raise SelectorError(
                f"label {key!r}: value {value!r} must be at most 63 letters, digits, '.', "
                "'_' or '-', starting and ending with a letter or digit."
            )
    return dict(labels)


def parse(text: str) -> Selector:
    """The selector ``text`` parses to; an empty one selects every node."""
    if len(text) > MAX_SELECTOR:
        raise SelectorError(f"a selector is at most {MAX_SELECTOR} characters.")
    return _Parser(text).selector()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.at = 0

    def peek(self) -> tuple[str, int]:
        return self.tokens[self.at] if self.at < len(self.tokens) else ("", len(self.text))

    def take(self) -> tuple[str, int]:
        token = self.peek()
        self.at += 1
        return token

    def fail(self, what: str, position: int) -> SelectorError:
        found = self.peek()[0] or "the end"
        return SelectorError(f"selector: expected {what} at position {position + 1}, "
                             f"found {found!r}.")  # fmt: skip

    def selector(self) -> Selector:
        if not self.tokens:
            return Selector(())
        requirements = [self.requirement()]
        while self.peek()[0] == ",":
            self.take()
            requirements.append(self.requirement())
        if self.peek()[0]:
            raise self.fail("',' or the end", self.peek()[1])
        return Selector(tuple(requirements))

    def requirement(self) -> Requirement:
        if self.peek()[0] == "!":
            self.take()
            return Requirement(self.key(), "!exists")
        key = self.key()
        token, position = self.peek()
        if token in ("=", "==", "!="):
            self.take()
            return Requirement(key, "!=" if token == "!=" else "=", frozenset([self.value()]))
        if token in ("in", "notin"):
            self.take()
            return Requirement(key, token, self.value_set())
        if token in ("", ","):
            return Requirement(key, "exists")
        raise self.fail("'=', '!=', 'in' or 'notin'", position)

    def key(self) -> str:
        token, position = self.peek()
        if not KEY.fullmatch(token):
            raise self.fail("a label key", position)
        self.take()
        return token

    def value(self) -> str:
        token, position = self.peek()
        if token in (",", ")", ""):  # an empty value: "role="
            return ""
        if not VALUE.fullmatch(token):
            raise self.fail("a label value", position)
        self.take()
        return token

    def value_set(self) -> frozenset[str]:
        if self.peek()[0] != "(":
            raise self.fail("'('", self.peek()[1])
        self.take()
        values = [self.value()]
        while self.peek()[0] == ",":
            self.take()
            values.append(self.value())
        if self.peek()[0] != ")":
            raise self.fail("',' or ')'", self.peek()[1])
        self.take()
        return frozenset(values)


def _tokenize(text: str) -> list[tuple[str, int]]:
    tokens: list[tuple[str, int]] = []
    at = 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        found = TOKEN.match(text, at)
        if found is None:
            start = len(text[at:]) - len(text[at:].lstrip()) + at
            raise SelectorError(
                f"selector: unexpected character {text[start]!r} at position {start + 1}."
            )
        kind = "op" if found.group("op") else "word"
        tokens.append((found.group(kind), found.start(kind)))
        at = found.end()
    return tokens
