"""The API's permission class: a thin door to scheduler_app.access.

A view's queryset holds only the rows the caller may view (others are 404); this
class then asks whether the caller's role on the row allows what the view's action
does, and answers 403 with the reason when it does not.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request

from scheduler_app import access

# What each view action does to its row; an action not named here only reads it.
ACTION_RIGHTS = {
    "update": "edit",
    "partial_update": "edit",
    "destroy": "edit",
    "pause": "operate",
    "resume": "operate",
    "run": "operate",
    "cancel": "operate",
}


class HasRoleForAction(IsAuthenticated):
    """The caller's role on the row allows the view's action (``view.action_rights``
    first, then ACTION_RIGHTS, else ``view``)."""

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        rights = {**ACTION_RIGHTS, **getattr(view, "action_rights", {})}
        action = rights.get(view.action, "view")
        if access.can(request.user, action, obj):
            return True
        self.message = access.refusal(request.user, action, obj)
        return False
