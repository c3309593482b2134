"""Pages of rows at a fraction of DRF's cost, with the same JSON.

DRF turns each row into a dict field by field, and for each field walks its generic
machinery (``get_attribute`` with its callable checks, a ``PKOnlyObject`` for each
relation, the current time zone looked up again for every date): with 20 to 55
fields and 50 rows a page, that was most of a list's processor time. Here a list
works out once, per field, a plain reader (the model attribute, a foreign key's
``*_id``) and the conversion DRF's field applies, then applies them to every row.
A field not known to read plainly (a method field, a nested serializer, a field
that reads its value its own way, a path through a missing row) goes through DRF's
own steps, so the output is DRF's by construction; tests/test_api_rows.py compares
the two.

A ModelSerializer opts in with ``Meta.list_serializer_class = PlainListSerializer``;
one row (retrieve, create, update) still goes through DRF alone.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from rest_framework import fields as drf_fields
from rest_framework import relations, serializers
from rest_framework.fields import SkipField
from rest_framework.relations import PKOnlyObject
from rest_framework.settings import api_settings

SKIP = object()  # a field DRF leaves out of this row (SkipField)
Reader = Callable[[Any], Any]
Convert = Callable[[Any], Any]

# DRF fields whose to_representation is a plain function of the (not None) value.
SIMPLE: dict[type[drf_fields.Field], Convert] = {
    drf_fields.CharField: str,
    drf_fields.IntegerField: int,
    drf_fields.FloatField: float,
}


def overrides(field: drf_fields.Field, method: str, base: type) -> bool:
    return getattr(type(field), method) is not getattr(base, method)


def drf_reader(field: drf_fields.Field) -> Reader:
    """The field's value in a row, by Serializer.to_representation's own steps."""

    def read(row: Any) -> Any:
        try:
            attribute = field.get_attribute(row)
        except SkipField:
            return SKIP
        check_for_none = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
        return None if check_for_none is None else field.to_representation(attribute)

    return read


def plain_attribute(model: type[models.Model], name: str) -> bool:
    """Whether ``getattr(row, name)`` is the value DRF reads: a model field or a
    property, not a method (which DRF would call)."""
    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        return isinstance(inspect.getattr_static(model, name, None), property)
    return True


def foreign_key(model: type[models.Model], name: str) -> models.ForeignKey | None:
    try:
        relation = model._meta.get_field(name)
    except FieldDoesNotExist:
        return None
    return relation if isinstance(relation, models.ForeignKey) else None


def plain_path(model: type[models.Model], path: list[str]) -> bool:
    """Whether each step of ``a.b`` is a plain attribute, through foreign keys."""
    for name in path[:-1]:
        relation = foreign_key(model, name)
        if relation is None:
            return False
        model = relation.related_model
    return plain_attribute(model, path[-1])


def iso_datetime(field: drf_fields.DateTimeField) -> Convert:
    """DateTimeField's ISO 8601 output with its time zone read once, not per value."""
    zone = field.timezone if hasattr(field, "timezone") else field.default_timezone()

    def convert(value: Any) -> Any:
        if zone is None or not isinstance(value, datetime) or value.tzinfo is None:
            return field.to_representation(value)
        text = value.astimezone(zone).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return convert


def plain_iso(field: drf_fields.DateTimeField) -> bool:
    output_format = getattr(field, "format", api_settings.DATETIME_FORMAT)
    return (
        output_format is not None
        and output_format.lower() == drf_fields.ISO_8601
        and not overrides(field, "to_representation", drf_fields.DateTimeField)
        and not overrides(field, "enforce_timezone", drf_fields.DateTimeField)
    )


def converter(field: drf_fields.Field) -> Convert | None:
    """What DRF's field does to a value it read (not None); None when the field reads
    its value its own way, or is a serializer."""
    if isinstance(field, serializers.BaseSerializer):
        return None
    if overrides(field, "get_attribute", drf_fields.Field):
        return None
    for base, convert in SIMPLE.items():
        if isinstance(field, base) and not overrides(field, "to_representation", base):
            return convert
    json_base = drf_fields.JSONField
    if isinstance(field, json_base) and not overrides(field, "to_representation", json_base):
        return field.to_representation if field.binary else lambda value: value
    if isinstance(field, drf_fields.DateTimeField) and plain_iso(field):
        return iso_datetime(field)
    return field.to_representation


def foreign_key_id(field: drf_fields.Field, model: type[models.Model]) -> str | None:
    """The ``*_id`` attribute a PrimaryKeyRelatedField shows, when it shows just that."""
    if not isinstance(field, relations.PrimaryKeyRelatedField) or field.pk_field is not None:
        return None
    base = relations.PrimaryKeyRelatedField
    if any(overrides(field, name, base) for name in ("get_attribute", "to_representation")):
        return None
    relation = foreign_key(model, field.source_attrs[0]) if len(field.source_attrs) == 1 else None
    return relation.attname if relation is not None else None


def reader(field: drf_fields.Field, model: type[models.Model]) -> Reader:
    """The field's value in a row of ``model``: read plainly where that is known to give
    DRF's value, else by DRF's steps."""
    if attname := foreign_key_id(field, model):
        return lambda row: getattr(row, attname)
    convert = converter(field)
    path = field.source_attrs
    if convert is None or not path or not plain_path(model, path):
        return drf_reader(field)
    *through, last = path
    by_drf = drf_reader(field)

    def read(row: Any) -> Any:
        target = row
        for name in through:
            target = getattr(target, name)
            if target is None:  # DRF's default, allow_null or SkipField decide
                return by_drf(row)
        value = getattr(target, last)
        return None if value is None else convert(value)

    return read


class PlainListSerializer(serializers.ListSerializer):
    """``many=True`` of a ModelSerializer: each row's JSON as the child's fields give it,
    with the readers worked out once per list."""

    def to_representation(self, data: Iterable[Any]) -> list[dict[str, Any]]:
        if type(self.child).to_representation is not serializers.Serializer.to_representation:
            return super().to_representation(data)
        rows = list(data.all() if isinstance(data, models.manager.BaseManager) else data)
        if not rows:  # no fields to build, as in DRF
            return []
        model = self.child.Meta.model
        plan = [(field.field_name, reader(field, model)) for field in self.child._readable_fields]
        page = []
        for row in rows:
            item = {}
            for name, read in plan:
                value = read(row)
                if value is not SKIP:
                    item[name] = value
            page.append(item)
        return page
