from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.request import Request


class BoundedPageSize:
    """``?page_size=`` from 1 to 500: anything else is a 400, as the schema says, not
    quietly the default."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request: Request) -> int:
        given = request.query_params.get(self.page_size_query_param)
        if given is None:
            return self.page_size
        try:
            size = int(given)
        except ValueError:
            size = 0
        if not 1 <= size <= self.max_page_size or given.strip() != given:
            raise ValidationError(
                {
                    self.page_size_query_param: [
                        f"must be a whole number from 1 to {self.max_page_size}."
                    ]
                }
            )
        return size

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)  # type: ignore[misc]
        bounds = {
            "page": {"minimum": 1},
            self.page_size_query_param: {"minimum": 1, "maximum": self.max_page_size},
        }
        for parameter in parameters:
            parameter["schema"] = {**parameter["schema"], **bounds.get(parameter["name"], {})}
        return parameters


class Pagination(BoundedPageSize, PageNumberPagination):
    """``{"count", "next", "previous", "results"}``; ``?page=`` and ``?page_size=`` (1-500);
    a page past the end is a 404."""


class RunPagination(BoundedPageSize, CursorPagination):
    """Runs, newest first: ``{"next", "previous", "results"}``, no count.

    A page of runs is read from an index on (queued_at, id) from where the last one
    ended (``?cursor=``, from the ``next`` and ``previous`` links), so it costs the
    same on the first page and the thousandth, with a million runs as with ten; a
    count of them would read the whole table. A cursor that is not one of ours is a
    404."""

    ordering = ("-queued_at", "-id")
