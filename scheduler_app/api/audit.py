"""GET /api/v1/audit/: who changed what, when and from where, newest first.

A user sees the events of what they may see (scheduler_app.audit.visible_to).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django_filters.fields import IsoDateTimeField
from rest_framework import mixins, serializers, viewsets

from scheduler_app import audit
from scheduler_app.api.views import IdFilter, StrictFilterSet
from scheduler_app.models import AuditEvent


class ChangeSerializer(serializers.Serializer):
    field = serializers.CharField()
    before = serializers.JSONField(allow_null=True, help_text="Secrets shown as ***.")
    after = serializers.JSONField(allow_null=True, help_text="Secrets shown as ***.")


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(
        source="actor_name", read_only=True, help_text="The user's name; empty: the system."
    )
    changes = ChangeSerializer(many=True, read_only=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "at", "actor", "address", "via", "action", "object_type", "object_id",
                  "object_label", "job", "changes"]  # fmt: skip
        read_only_fields = fields


class MomentField(IsoDateTimeField):
    """An ISO 8601 date and time, compared in UTC; present but empty is a 400, as the
    schema's format says (absent is no filter). In UTC because a database need not take
    every offset Python does (PostgreSQL refuses +19:08), and a year-1 or year-9999
    moment with an offset has no UTC time at all: a 400, not a 500."""

    def to_python(self, value: Any) -> Any:
        if value == "":
            raise forms.ValidationError("must be a date and time (ISO 8601).", code="invalid")
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError(
                "must be a date and time between the years 1 and 9999 in UTC.", code="invalid"
            ) from None


class MomentFilter(django_filters.IsoDateTimeFilter):
    field_class = MomentField


class AuditFilter(StrictFilterSet):
    job = IdFilter(field_name="job_id", min_value=1, max_value=2**63 - 1)
    actor = django_filters.CharFilter(field_name="actor_name", help_text="A user name.")
    since = MomentFilter(field_name="at", lookup_expr="gte", help_text="At or after.")
    until = MomentFilter(field_name="at", lookup_expr="lt", help_text="Before.")

    class Meta:
        model = AuditEvent
        fields = ["job", "actor", "action", "object_type", "since", "until"]


class AuditEventViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Every change to a job, template or calendar, and every run now, pause, resume
    and cancel: who (``actor``), when, from where (``address``, ``via``), what changed
    (``changes``: field, before, after; secret values as ***). ``?since=`` and
    ``?until=`` bound ``at`` (ISO 8601)."""

    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    filterset_class = AuditFilter

    def get_queryset(self) -> QuerySet[Any]:
        if getattr(self, "swagger_fake_view", False):
            return self.queryset.none()
        return audit.visible_to(self.request.user)
