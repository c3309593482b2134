"""The admin under the rules of scheduler_app.access, and its pages for teams.

``is_staff`` opens the admin site; Django's model permissions say which pages a
staff user has; and on each row, their role says what they may do, as in the API:
a row they cannot view is not listed (and its page is "does not exist"), one they
can view but not edit is shown read only.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, ForeignKey, QuerySet
from django.http import HttpRequest

from scheduler_app import access
from scheduler_app.models import Membership, Team


def choices(db_field: ForeignKey, request: HttpRequest) -> QuerySet[Any] | None:
    """What a form may point at: a team the user may put rows in; a calendar or an
    upstream job they may view (None: Django's own choice)."""
    if db_field.name == "team":
        return access.teams_with_right(request.user, "edit")
    if db_field.name in ("calendar", "upstream"):
        return access.visible(request.user, db_field.related_model._default_manager.all())
    return None


class AccessAdmin(admin.ModelAdmin):
    """Rows listed as the user may view them; changed and deleted as they may edit them.
    ``access_via`` is the path to the row whose owner and team decide."""

    access_via = ""
    change_action = "edit"  # the right that changing or deleting a row needs

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return access.visible(request.user, super().get_queryset(request), self.access_via)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_view_permission(request, obj)
        return allowed and (obj is None or access.can(request.user, "view", obj))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or access.can(request.user, self.change_action, obj))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or access.can(request.user, self.change_action, obj))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        """Only a superuser gives a row to another owner; anyone else's rows are their own."""
        fields = list(super().get_readonly_fields(request, obj))
        owned = any(f.name == "owner" for f in self.model._meta.fields)
        if owned and not request.user.is_superuser:  # type: ignore[union-attr]
            fields.append("owner")
        return fields

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):  # type: ignore[no-untyped-def]
        """The form class made for this request knows its user (forms check rights)."""
        form = super().get_form(request, obj, change, **kwargs)
        form.user = request.user
        return form

    def formfield_for_foreignkey(self, db_field: ForeignKey, request: HttpRequest, **kwargs: Any):  # type: ignore[no-untyped-def]
        if (rows := choices(db_field, request)) is not None:
            kwargs["queryset"] = rows
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change and "owner" in self.get_readonly_fields(request, obj):
            obj.owner = request.user
        super().save_model(request, obj, form, change)

    def allowed(self, request: HttpRequest, queryset: QuerySet[Any], action: str) -> list[Any]:
        """The selected rows the user may do ``action`` to; the others are named as refused."""
        rows = list(queryset)
        ok = [row for row in rows if access.can(request.user, action, row)]
        if refused := [row for row in rows if row not in ok]:
            names = ", ".join(str(row) for row in refused[:5])
            self.message_user(
                request, f"Not allowed ({access.refusal(request.user, action, refused[0])}): "
                f"{names}.", messages.ERROR,
            )  # fmt: skip
        return ok


def rights_problems(form: forms.ModelForm, code_values: dict[str, Any], noun: str) -> None:
    """In a form's clean (its class has ``user``, see AccessAdmin.get_form): the code
    right's and the team's refusals, and, for a new row of a user who cannot choose its
    owner, that owner (them) and its name unique among their rows."""
    user, data = form.user, form.cleaned_data  # type: ignore[attr-defined]
    row = form.instance if form.instance.pk else None
    if problem := access.code_refusal(user, code_values, noun):
        form.add_error("condition" if code_values.get("condition") else None, problem)
    if "team" in data and (problem := access.team_refusal(user, row, data["team"])):
        form.add_error("team", problem)
    if row is None and "owner" not in form.fields:
        form.instance.owner = user
        if type(form.instance).objects.filter(owner=user, name=data.get("name")).exists():
            form.add_error("name", f"you already have a {noun} named {data.get('name')!r}.")


class OwnedForm(forms.ModelForm):
    """A calendar's or template's form, under the rights (see rights_problems)."""

    noun = "calendar"

    def code_values(self) -> dict[str, Any]:
        return {}

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        rights_problems(self, self.code_values(), self.noun)
        return data


class MembershipFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        kept = [f for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
        if not any(f.cleaned_data.get("role") == Membership.Role.ADMIN for f in kept):
            raise forms.ValidationError("A team needs at least one member with the role admin.")


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipFormSet
    extra = 1
    fields = ["user", "role", "added_at"]
    readonly_fields = ["added_at"]

    def _manages(self, request: HttpRequest, obj: Any) -> bool:
        return obj is None or access.can(request.user, "manage", obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._manages(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._manages(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._manages(request, obj)


@admin.register(Team)
class TeamAdmin(AccessAdmin):
    """Teams and their members: members see a team, its admins change it."""

    change_action = "manage"
    list_display = ["name", "description", "member_count", "created_at"]
    search_fields = ["name", "description"]
    inlines = [MembershipInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        return access.viewable_teams(request.user).annotate(members=Count("memberships"))

    @admin.display(description="members", ordering="members")
    def member_count(self, team: Team) -> int:
        return team.members  # type: ignore[attr-defined]
