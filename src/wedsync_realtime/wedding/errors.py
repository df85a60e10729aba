"""The errors of the WedSync domain services, one class per answer the REST API gives.

`DomainError` subclasses map one-to-one to HTTP statuses (`status`), so the API maps them in one
place: `NotFound` 404, `NotPermitted` 403, `Conflict` 409, `Invalid` 422. Each message says what
was wrong in words a supplier or couple could act on.
"""

from __future__ import annotations

__all__ = ["Conflict", "DomainError", "Invalid", "NotFound", "NotPermitted"]


class DomainError(Exception):
    """A refused domain operation; nothing was written."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: The request field the error is about, when there is one.
        self.field = field


class NotFound(DomainError):
    """An unknown id (or one the caller may not know of)."""

    status = 404


class NotPermitted(DomainError):
    """The caller may not do this (not the couple, not the form's couple...)."""

    status = 403


class Conflict(DomainError):
    """The state changed since the caller read it (a stale version), or forbids the step."""

    status = 409


class Invalid(DomainError):
    """A value of the wrong shape for its field."""

    status = 422
