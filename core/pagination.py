"""Cursor pagination for the lists that grow with history (orders, their events, deliveries).

A page-number list counts every row it could show (``COUNT(*)``) and reads page ``n`` by skipping
``n x size`` rows, so its cost grows with the table. A cursor page costs the same on the first
page and the millionth: the cursor carries the position of the last row shown, the next page is
read from an index starting at that position, and nothing is counted. The answer is
``{"next", "previous", "results"}``; ``next`` and ``previous`` are links (``null`` at either end).

Built on DRF's :class:`~rest_framework.pagination.CursorPagination`, with the API's rules for input:
a malformed or tampered cursor and a page size that is not a positive integer are 400s with a field
error (DRF answers the first with a 404, ignores the second, and a tampered position would
reach the database as an invalid value), and a page size above the cap is served at the cap.

Use it with a queryset whose ``ordering`` fields have an index in that order, filters first, for
example ``(customer_id, created_at DESC, id DESC)`` for one customer's orders, newest first. A
view that paginates by hand names it as its ``pagination_class``: drf-spectacular then documents
the page's shape and its ``cursor`` and ``page_size`` parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Field, QuerySet
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.views import APIView

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


class CursorPage(CursorPagination):
    """Newest first by ``created_at`` (the primary key orders rows created in the same microsecond).

    DRF positions the cursor on the first ordering field and skips rows that share that value with
    an offset (at most 1,000), so the first field must be nearly unique: a creation time is.
    Subclass it to change ``ordering``.
    """

    ordering: Any = ("-created_at", "-pk")
    page_size = DEFAULT_PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    page_size_query_description = (
        f"Rows per page: {DEFAULT_PAGE_SIZE} by default, at most {MAX_PAGE_SIZE} (more is capped)."
    )
    cursor_query_description = "Where the page starts: the cursor in the `next` or `previous` link of another page."
    invalid_cursor_message = "Invalid cursor."

    _position_field: Field[Any, Any] | None = None

    def paginate_queryset(
        self, queryset: QuerySet[Any, Any] | Sequence[Any], request: Request, view: APIView | None = None
    ) -> list[Any] | None:
        if isinstance(queryset, QuerySet):
            # The field the cursor's position is compared with, to check a position before use.
            name = str(self.ordering[0]).lstrip("-")
            opts = queryset.model._meta
            self._position_field = opts.pk if name == "pk" else opts.get_field(name)
        return super().paginate_queryset(queryset, request, view)

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if size < 1:
            raise ValidationError(
                {
                    self.page_size_query_param: [
                        f"A whole number of 1 or more (at most {self.max_page_size} are served)."
                    ]
                }
            )
        return min(size, self.max_page_size)

    def decode_cursor(self, request: Request) -> Cursor | None:
        try:
            cursor = super().decode_cursor(request)
        except NotFound as exc:
            raise self._invalid_cursor() from exc
        if cursor is not None and cursor.position is not None and self._position_field is not None:
            # A position is only ever written by encode_cursor; one that is not a value of the field
            # was made by hand, and PostgreSQL would refuse it (a 500) if it were sent on.
            try:
                self._position_field.to_python(cursor.position)
            except DjangoValidationError as exc:
                raise self._invalid_cursor() from exc
        return cursor

    def _invalid_cursor(self) -> ValidationError:
        return ValidationError({self.cursor_query_param: [self.invalid_cursor_message]})


class OldestFirstCursorPage(CursorPage):
    """Oldest first: a history read in the order it happened."""

    ordering = ("created_at", "pk")
