"""The errors domain code raises, and nothing else; the HTTP and NATS edges translate them.

    DomainError            a request that cannot be carried out as asked
    ├── Invalid            the input breaks a rule (HTTP 422; NATS reply "invalid")
    ├── NotFound           no such object, or not one the caller may know of (404)
    ├── Conflict           the object changed meanwhile, or already exists (409)
    ├── InvalidTransition  the object's state does not allow this action (409)
    ├── Unauthenticated    no valid credentials (401)
    ├── Forbidden          valid credentials, but not allowed on this object (403)
    ├── TooManyRequests    too many attempts or requests: wait ``retry_after`` seconds (429)
    └── Unavailable        a service this one depends on did not answer (503; transient)

    PermanentFailure       an incoming event that can never be processed: parked, not retried

Every error carries a stable ``type`` (a URI path under ``/problems/``), a human ``detail``
free of personal data, and, where one field is at fault, its name.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a caller can act on."""

    status = 400
    type = "bad-request"
    title = "Bad request"
    transient = False  # true: the same request may succeed later

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field

    def extensions(self) -> dict[str, object]:
        """Members a problem document adds for this kind of error (RFC 9457 §3.2)."""
        return {}


class Invalid(DomainError):
    status = 422
    type = "invalid"
    title = "Invalid input"


class NotFound(DomainError):
    status = 404
    type = "not-found"
    title = "Not found"


class Conflict(DomainError):
    status = 409
    type = "conflict"
    title = "Conflict"


class InvalidTransition(Conflict):
    type = "invalid-transition"
    title = "Action not allowed in this state"

    def __init__(
        self, detail: str, *, field: str | None = None, allowed: list[str] | None = None
    ) -> None:
        super().__init__(detail, field=field)
        self.allowed = allowed or []

    def extensions(self) -> dict[str, object]:
        return {"allowed": self.allowed}


class Unauthenticated(DomainError):
    status = 401
    type = "unauthenticated"
    title = "Authentication required"


class Forbidden(DomainError):
    status = 403
    type = "forbidden"
    title = "Forbidden"


class TooManyRequests(DomainError):
    """Too many login attempts or API requests: the same request is accepted again later."""

    status = 429
    type = "too-many-requests"
    title = "Too many requests"
    transient = True

    # A default, so that the bus can rebuild one from a typed error reply like any other.
    def __init__(self, detail: str, *, retry_after: int = 1, field: str | None = None) -> None:
        super().__init__(detail, field=field)
        self.retry_after = max(1, retry_after)

    def extensions(self) -> dict[str, object]:
        return {"retry_after": self.retry_after}


class Unavailable(DomainError):
    """Not the caller's mistake: try again later. An event handler raising it is retried."""

    status = 503
    type = "unavailable"
    title = "Service unavailable"
    transient = True


BY_TYPE: dict[str, type[DomainError]] = {
    cls.type: cls
    for cls in (
        Invalid,
        NotFound,
        Conflict,
        InvalidTransition,
        Unauthenticated,
        Forbidden,
        TooManyRequests,
        Unavailable,
    )
}


class PermanentFailure(Exception):
    """An incoming message that no retry can fix (malformed, unknown, refused): dead-letter it."""
