"""Teams and their members: ``/api/v1/teams/`` and ``/api/v1/teams/{id}/members/``.

Anyone signed in may make a team (they become its admin); members see it, its
admins change it and its members (``manage``). The changes are
scheduler_app.teams'.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, OuterRef, QuerySet, Subquery
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from scheduler_app import access, teams
from scheduler_app.api.permissions import HasRoleForAction
from scheduler_app.api.serializers import StrictCharField
from scheduler_app.models import Membership, Team

User = get_user_model()


class TeamSerializer(serializers.ModelSerializer):
    name = StrictCharField(max_length=100)
    description = StrictCharField(required=False, allow_blank=True)
    role = serializers.SerializerMethodField(help_text="The caller's role in the team, if any.")
    members = serializers.SerializerMethodField(help_text="How many members it has.")

    class Meta:
        model = Team
        fields = ["id", "name", "description", "role", "members", "created_at"]
        read_only_fields = ["created_at"]
        validators: list[Any] = []

    # Read from the list's annotations (one query for a page); a row just made or
    # changed has none, and asks.
    @extend_schema_field(serializers.ChoiceField(Membership.Role.choices, allow_null=True))
    def get_role(self, team: Team) -> str | None:
        if hasattr(team, "caller_role"):
            return team.caller_role
        return access.team_role(self.context["request"].user, team.pk)

    def get_members(self, team: Team) -> int:
        if hasattr(team, "member_count"):
            return team.member_count
        return team.memberships.count()

    def validate_name(self, value: str) -> str:
        clash = Team.objects.filter(name=value)
        if self.instance:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError(f"a team named {value!r} exists already.")
        return value


class MemberSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(
        slug_field="username", queryset=User.objects.all(), help_text="A username."
    )
    role = serializers.ChoiceField(Membership.Role.choices, default=Membership.Role.VIEWER)

    class Meta:
        model = Membership
        fields = ["user", "role", "added_at"]
        read_only_fields = ["added_at"]
        validators: list[Any] = []


class MemberRoleSerializer(MemberSerializer):
    role = serializers.ChoiceField(Membership.Role.choices)


class MemberQuerySerializer(serializers.Serializer):
    user = StrictCharField(help_text="The member's username.")


def judged(change: Any, *args: Any) -> Any:
    """A scheduler_app.teams change, its TeamError as a 400 with its field messages."""
    try:
        return change(*args)
    except teams.TeamError as exc:
        raise serializers.ValidationError(exc.errors) from exc


class TeamViewSet(viewsets.ModelViewSet):
    """Teams: people who share jobs, templates and calendars, each with a role."""

    queryset = Team.objects.all()
    serializer_class = TeamSerializer
    permission_classes = [HasRoleForAction]
    action_rights = {
        "update": "manage",
        "partial_update": "manage",
        "destroy": "manage",
        "add_member": "manage",
        "change_member": "manage",
        "remove_member": "manage",
    }

    def get_queryset(self) -> QuerySet[Team]:
        if getattr(self, "swagger_fake_view", False):
            return Team.objects.none()
        members = Membership.objects.filter(team=OuterRef("pk"))
        return (
            access.viewable_teams(self.request.user)
            .annotate(
                caller_role=Subquery(members.filter(user_id=self.request.user.pk).values("role")),
                member_count=Subquery(
                    members.order_by().values("team").annotate(n=Count("id")).values("n")
                ),
            )
            .order_by("name", "id")
        )

    def perform_create(self, serializer: TeamSerializer) -> None:
        data = serializer.validated_data
        serializer.instance = teams.create_team(
            data["name"], self.request.user, data.get("description", "")
        )

    @extend_schema(responses={204: None, 400: OpenApiResponse(description="It still holds rows.")})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        team = self.get_object()
        if held := teams.holdings(team):
            said = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in held.items())
            raise serializers.ValidationError(
                {"team": [f"still holds {said}; move or delete them first."]}
            )
        team.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=MemberSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"])
    def members(self, request: Request, pk: str | None = None) -> Response:
        """The team's members and their roles (any member may look)."""
        rows = self.get_object().memberships.select_related("user").order_by("user__username")
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(MemberSerializer(page, many=True).data)

    @extend_schema(request=MemberSerializer, responses={201: MemberSerializer})
    @members.mapping.post
    def add_member(self, request: Request, pk: str | None = None) -> Response:
        """Add a user with a role (viewer unless told); team admins only."""
        team = self.get_object()
        body = MemberSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        member = judged(teams.add_member, team, data["user"], data["role"])
        return Response(MemberSerializer(member).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MemberRoleSerializer, responses=MemberSerializer)
    @members.mapping.patch
    def change_member(self, request: Request, pk: str | None = None) -> Response:
        """Change a member's role; team admins only. A team keeps at least one admin."""
        team = self.get_object()
        body = MemberRoleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        member = judged(teams.set_role, team, data["user"], data["role"])
        return Response(MemberSerializer(member).data)

    @extend_schema(
        parameters=[OpenApiParameter("user", str, required=True, description="A username.")],
        request=None,
        responses={204: None},
        filters=False,
    )
    @members.mapping.delete
    def remove_member(self, request: Request, pk: str | None = None) -> Response:
        """Remove a member (``?user=``); team admins only. A team keeps at least one admin."""
        team = self.get_object()
        query = MemberQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        user = User.objects.filter(username=query.validated_data["user"]).first()
        if user is None:
            raise serializers.ValidationError({"user": ["no such user."]})
        judged(teams.remove_member, team, user)
        return Response(status=status.HTTP_204_NO_CONTENT)
