"""The toxiproxy API's error values, with the messages and statuses of api.go.

Clients match on these exact strings and codes (toxiproxy-python maps 404,
409 and 400 to exceptions), so they must not drift from upstream.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ApiError(Exception):
    """An API failure with its HTTP status; the body is {"error": ..., "status": ...}."""

    message: str
    status: int

    def __str__(self) -> str:
        return self.message

    def wrap(self, detail: str) -> "ApiError":
        """Upstream's joinError: '<message>: <detail>' with the same status."""
        return ApiError(f"{self.message}: {detail}", self.status)

    def body(self) -> dict[str, object]:
        return {"error": self.message, "status": self.status}


BAD_REQUEST_BODY = ApiError("bad request body", 400)
MISSING_FIELD = ApiError("missing required field", 400)
PROXY_NOT_FOUND = ApiError("proxy not found", 404)
PROXY_ALREADY_EXISTS = ApiError("proxy already exists", 409)
INVALID_STREAM = ApiError("stream was invalid, can be either upstream or downstream", 400)
INVALID_TOXIC_TYPE = ApiError("invalid toxic type", 400)
TOXIC_ALREADY_EXISTS = ApiError("toxic already exists", 409)
TOXIC_NOT_FOUND = ApiError("toxic not found", 404)


def internal(message: str) -> ApiError:
    """An error without a status of its own: upstream answers 500 with its text."""
    return ApiError(message, 500)
