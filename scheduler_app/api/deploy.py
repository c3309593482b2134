"""``/api/v1/files/`` (files ``file`` jobs deploy) and ``/api/v1/software/`` (the
catalogue ``software`` jobs install from).

An upload is streamed: its bytes are counted and hashed as they arrive, into a
temporary file, and refused as soon as they pass SCHEDULER_FILE_MAX_BYTES; only then
is it saved to the ``files`` storage (scheduler_app/deployment.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import APIException, PermissionDenied
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from scheduler_app import access, deployment
from scheduler_app.api.serializers import OwnedSerializer, StrictCharField
from scheduler_app.api.views import OwnedViewSetMixin
from scheduler_app.models import Software, StoredFile, Team
from scheduler_app.payloads import PayloadError


class Conflict(APIException):
    """The row is still in use: a 409 saying by what."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class LimitedHashingUpload(TemporaryFileUploadHandler):
    """Django's upload to a temporary file, counting and hashing each chunk, and
    stopping the upload (the rest read and dropped) once past ``limit`` bytes."""

    def __init__(self, request: Any, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.too_large = False
        self.hasher = hashlib.sha256()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > self.limit:
            self.too_large = True
            raise StopUpload(connection_reset=False)
        self.hasher.update(raw_data)
        return super().receive_data_chunk(raw_data, start)

    def file_complete(self, file_size: int) -> UploadedFile | None:
        uploaded = super().file_complete(file_size)
        uploaded.sha256 = self.hasher.hexdigest()  # type: ignore[union-attr]
        return uploaded


class StoredFileSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)

    class Meta:
        model = StoredFile
        fields = ["id", "name", "size", "sha256", "created_at", "owner", "team"]
        read_only_fields = fields


def _too_large(limit: int) -> Response:
    message = f"'file' is larger than {limit} bytes (SCHEDULER_FILE_MAX_BYTES)."
    return Response({"file": [message], "detail": message},
                    status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)  # fmt: skip


def _team(request: Request) -> Team | None:
    """The optional ``team`` form field: a team the uploader may put rows in."""
    raw = request.data.get("team") or None
    if raw is None:
        return None
    an_id = raw.isascii() and raw.isdigit()  # str.isdigit takes "²", which filter() refuses
    team = access.viewable_teams(request.user).filter(pk=raw).first() if an_id else None
    if team is None:
        raise serializers.ValidationError({"team": [f'Invalid pk "{raw[:20]}" - object does '
                                                    "not exist."]})  # fmt: skip
    if problem := access.team_refusal(request.user, None, team):
        raise PermissionDenied(problem)
    return team


@extend_schema(tags=["files"])
class StoredFileViewSet(
    OwnedViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Files uploaded for ``file`` jobs: multipart ``file`` (and optional ``name``, ``team``)."""

    queryset = StoredFile.objects.select_related("owner")
    serializer_class = StoredFileSerializer
    parser_classes = [MultiPartParser]

    @extend_schema(
        request=inline_serializer(
            "FileUpload",
            {
                "file": serializers.FileField(),
                "name": serializers.CharField(required=False),
                "team": serializers.IntegerField(required=False),
            },
        ),
        responses={201: StoredFileSerializer},
    )
    def create(self, request: Request) -> Response:
        limit = settings.SCHEDULER_FILE_MAX_BYTES
        handler = LimitedHashingUpload(request._request, limit)
        request._request.upload_handlers = [handler]
        uploads = request.FILES.getlist("file")
        if handler.too_large:
            return _too_large(limit)
        if len(uploads) != 1 or len(request.FILES) != 1:
            raise serializers.ValidationError({"file": ["send exactly one file, as 'file'."]})
        upload = uploads[0]
        try:
            name = deployment.file_name(str(request.data.get("name") or upload.name or ""))
        except PayloadError as exc:
            raise serializers.ValidationError({"name": [str(exc)]}) from exc
        team = _team(request)
        stored = StoredFile.objects.create(
            owner=request.user, team=team, name=name, size=upload.size, sha256=upload.sha256,
            storage_name=deployment.store(upload),
        )  # fmt: skip
        body = StoredFileSerializer(stored, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        stored = self.get_object()
        if users := deployment.jobs_using(stored):
            raise Conflict(deployment.in_use_refusal(request.user, f"file {stored.pk}", users))
        stored.delete()  # its bytes go after the commit (scheduler_app/signals.py)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SoftwareSerializer(OwnedSerializer):
    noun = "software"
    owner = serializers.CharField(source="owner.username", read_only=True)
    check = StrictCharField(source="check_command", help_text="Prints the installed version.")

    class Meta:
        model = Software
        fields = ["id", "name", "description", "version", "install", "pip", "check",
                  "uninstall", "team", "owner", "created_at", "updated_at"]  # fmt: skip
        read_only_fields = ["created_at", "updated_at"]
        validators: list[Any] = []

    def validate_version(self, value: str) -> str:
        return _rule(deployment.SOFTWARE_RULES["version"], value)

    def validate_pip(self, value: str) -> str:
        return _rule(deployment.SOFTWARE_RULES["pip"], value)

    def validate_install(self, value: str) -> str:
        return _rule(deployment.SOFTWARE_RULES["install"], value)

    def validate_check(self, value: str) -> str:
        return _rule(deployment.SOFTWARE_RULES["check"], value)

    def validate_uninstall(self, value: str) -> str:
        return _rule(deployment.SOFTWARE_RULES["uninstall"], value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not access.may_run_code(self.context["request"].user):
            raise PermissionDenied(deployment.CATALOGUE_RIGHT)
        values = {**self._stored(), **attrs}
        if problem := deployment.install_problem(values.get("install", ""), values.get("pip", "")):
            raise serializers.ValidationError({"install": [problem]})
        return attrs

    def _stored(self) -> dict[str, Any]:
        if self.instance is None:
            return {}
        return {"install": self.instance.install, "pip": self.instance.pip}


def _rule(check: Callable[[str], str], value: str) -> str:
    try:
        return check(value)
    except PayloadError as exc:
        raise serializers.ValidationError(str(exc)) from exc


@extend_schema(tags=["software"])
class SoftwareViewSet(OwnedViewSetMixin, viewsets.ModelViewSet):
    """The software catalogue: what ``software`` jobs install, and how to check it."""

    queryset = Software.objects.select_related("owner")
    serializer_class = SoftwareSerializer

    def perform_destroy(self, instance: Software) -> None:
        if not access.may_run_code(self.request.user):
            raise PermissionDenied(f"changing the software catalogue needs {access.RUN_CODE}.")
        if users := deployment.jobs_installing(instance):
            what = f"software {instance.pk}"
            raise Conflict(deployment.in_use_refusal(self.request.user, what, users))
        instance.delete()
