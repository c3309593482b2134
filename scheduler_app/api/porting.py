"""GET /api/v1/export/ and POST /api/v1/import/: jobs, templates and calendars in and
out, as our own document or from crontab, Kubernetes and Celery beat files
(scheduler_app/porting)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import yaml
from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view, parser_classes, renderer_classes
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from scheduler_app import schedules
from scheduler_app.api.parsers import BoundedJSONParser
from scheduler_app.porting import apply, celery_beat, crontab, document, kubernetes
from scheduler_app.porting.items import FileError, Item, Options

READERS: dict[str, Callable[[str, Options], list[Item]]] = {
    "cronfleet": lambda text, options: document.read(text),
    "crontab": crontab.read,
    "kubernetes": kubernetes.read,
    "celery": celery_beat.read,
}


class YAMLRenderer(BaseRenderer):
    """``?format=yaml`` (DRF's own format parameter picks it), or Accept: application/yaml."""

    media_type = "application/yaml"
    format = "yaml"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: Any = None) -> bytes:  # fmt: skip
        plain = json.loads(JSONRenderer().render(data))  # DRF's types (ErrorDetail) as JSON's
        return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True).encode()


class ExportQuerySerializer(serializers.Serializer):
    format = serializers.ChoiceField(["json", "yaml"], default="json")
    include_secrets = serializers.BooleanField(
        default=False,
        help_text="Env values and webhook URLs in clear, for the rows you may edit (audited).",
    )
    job = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), required=False,
        max_length=500, help_text="Only these jobs (repeat: job=1&job=2; at most 500).",
    )  # fmt: skip


class ImportSerializer(serializers.Serializer):
    format = serializers.ChoiceField(list(READERS), default="cronfleet")
    content = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False,
        help_text="The file's text (or send it as the multipart field 'file').",
    )  # fmt: skip
    file = serializers.FileField(required=False, write_only=True)
    dry_run = serializers.BooleanField(default=False)
    on_conflict = serializers.ChoiceField(["update", "skip"], default="update")
    timezone = serializers.CharField(default="UTC", help_text="For lines that name none.")
    queue = serializers.CharField(default="default", help_text="For items that name none.")
    crontab_system = serializers.BooleanField(
        required=False, allow_null=True, default=None,
        help_text="crontab: lines have a user field (/etc/crontab); null: detected.",
    )  # fmt: skip

    def validate_timezone(self, value: str) -> str:
        try:
            return schedules.check_zone_name(value)
        except schedules.ScheduleError as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        upload = attrs.pop("file", None)
        if upload is not None:
            attrs["content"] = _read_upload(upload)
        if "content" not in attrs:
            needed = "the file's text is required (or a multipart 'file')."
            raise serializers.ValidationError({"content": [needed]})
        limit = settings.PORTING_MAX_CONTENT_BYTES
        if len(attrs["content"].encode()) > limit:
            raise serializers.ValidationError(
                {"content": [f"larger than {limit} bytes (PORTING_MAX_CONTENT_BYTES)."]}
            )
        if "\x00" in attrs["content"]:
            raise serializers.ValidationError({"content": ["must not contain NUL characters."]})
        return attrs


def _read_upload(upload: Any) -> str:
    limit = settings.PORTING_MAX_CONTENT_BYTES
    raw = upload.read(limit + 1)
    if len(raw) > limit:
        raise serializers.ValidationError(
            {"file": [f"larger than {limit} bytes (PORTING_MAX_CONTENT_BYTES)."]}
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise serializers.ValidationError({"file": ["must be UTF-8 text."]}) from None


class DryRunQuerySerializer(serializers.Serializer):
    dry_run = serializers.BooleanField(
        required=False, help_text="true (or 1): a dry run, whatever the body says."
    )


class ImportItemSerializer(serializers.Serializer):
    line = serializers.IntegerField(allow_null=True)
    type = serializers.ChoiceField(["job", "template", "calendar"])
    source = serializers.CharField()
    name = serializers.CharField(allow_blank=True)
    action = serializers.ChoiceField(["create", "update", "unchanged", "refused"])
    schedule = serializers.CharField(allow_null=True)
    next_runs = serializers.ListField(child=serializers.DateTimeField())
    errors = serializers.DictField(allow_null=True)
    warnings = serializers.ListField(child=serializers.CharField())


class ImportSummarySerializer(serializers.Serializer):
    create = serializers.IntegerField()
    update = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    refused = serializers.IntegerField()


class ImportReportSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    format = serializers.CharField()
    summary = ImportSummarySerializer()
    items = ImportItemSerializer(many=True)


@extend_schema(
    parameters=[ExportQuerySerializer],
    responses={
        (200, "application/json"): OpenApiResponse(
            OpenApiTypes.OBJECT,
            description=('{"cronfleet": 1, "exported_at", "jobs", "templates", "calendars"}'),
        ),
        (200, "application/yaml"): OpenApiResponse(
            OpenApiTypes.OBJECT, description="The same document, as YAML."
        ),
        400: OpenApiResponse(description="A query parameter is wrong (the field says which)."),
        404: OpenApiResponse(description="?format names no format this endpoint writes."),
    },
)
@api_view(["GET"])
@renderer_classes([JSONRenderer, YAMLRenderer])
def export(request: Request) -> Response:
    """What you may see, as a document POST /api/v1/import/ reads back."""
    query = ExportQuerySerializer(data={
        **request.query_params.dict(), "job": request.query_params.getlist("job"),
    })  # fmt: skip
    query.is_valid(raise_exception=True)
    options = query.validated_data
    return Response(document.export(request, options.get("job", []), options["include_secrets"]))


@extend_schema(
    request={"application/json": ImportSerializer, "multipart/form-data": ImportSerializer},
    parameters=[DryRunQuerySerializer],
    responses={200: ImportReportSerializer, 400: OpenApiResponse(description="Field errors."),
               413: OpenApiResponse(description="The body is too large.")},
)  # fmt: skip
@api_view(["POST"])
@parser_classes([BoundedJSONParser, MultiPartParser])
def import_(request: Request) -> Response:
    """Read a file (cronfleet, crontab, kubernetes, celery); each item is judged as the
    API would; a dry run writes nothing; a real import writes every item not refused
    in one transaction and reports the refused ones, line by line."""
    body = ImportSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    given = body.validated_data
    query = DryRunQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    dry_run = given["dry_run"] or bool(query.validated_data.get("dry_run"))
    options = Options(given["timezone"], given["queue"], given["crontab_system"])
    try:
        items = READERS[given["format"]](given["content"], options)
    except FileError as exc:
        return Response({"content": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
    reports = apply.run(items, request, dry_run=dry_run, on_conflict=given["on_conflict"])
    return Response({
        "dry_run": dry_run,
        "format": given["format"],
        "summary": apply.summary(reports),
        "items": [report.as_dict() for report in reports],
    })  # fmt: skip
