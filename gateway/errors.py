"""The one exception hierarchy of the gateway.

Every class knows how each protocol reports it: its HTTP status, its SCIM
``scimType`` (RFC 7644 §3.12) and its SOAP fault code (``Client`` for what the
caller got wrong, ``Server`` for what we did). Adapters render these; library
errors are wrapped into them at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations


class GatewayError(Exception):
    status: int = 500
    scim_type: str | None = None
    soap_fault: str = "Server"
    default_detail: str = "Internal error"

    def __init__(self, detail: str | None = None):
        self.detail = detail or self.default_detail
        super().__init__(self.detail)


class ClientError(GatewayError):
    status = 400
    soap_fault = "Client"
    default_detail = "Bad request"


class InvalidSyntax(ClientError):
    scim_type = "invalidSyntax"
    default_detail = "The request body is not valid"


class InvalidValue(ClientError):
    scim_type = "invalidValue"
    default_detail = "A value is missing or not valid"


class InvalidFilter(ClientError):
    scim_type = "invalidFilter"
    default_detail = "The filter is not valid"


class InvalidPath(ClientError):
    scim_type = "invalidPath"
    default_detail = "The path is not valid"


class NoTarget(ClientError):
    scim_type = "noTarget"
    default_detail = "The path selects no value"


class Mutability(ClientError):
    scim_type = "mutability"
    default_detail = "The attribute cannot be changed"


class TooMany(ClientError):
    scim_type = "tooMany"
    default_detail = "Too many results"


class Unauthorized(ClientError):
    status = 401
    default_detail = "Authentication required"


class Forbidden(ClientError):
    status = 403
    default_detail = "Not allowed"


class NotFound(ClientError):
    status = 404
    default_detail = "Resource not found"


class MethodNotAllowed(ClientError):
    status = 405
    default_detail = "Method not allowed"


class Conflict(ClientError):
    status = 409
    scim_type = "uniqueness"
    default_detail = "A resource with this value already exists"


class CircularReference(ClientError):
    """Bulk operations that reference each other in a circle (RFC 7644 §3.7.1)."""

    status = 409
    default_detail = "Circular bulkId references"


class FailedReference(ClientError):
    """A bulk operation references (bulkId) an operation that failed."""

    status = 409
    default_detail = "The referenced bulk operation failed"


class VersionMismatch(ClientError):
    """The resource changed since the version the caller holds (If-Match)."""

    status = 412
    default_detail = "The resource has changed"


class PayloadTooLarge(ClientError):
    status = 413
    default_detail = "The request is too large"


class UnsupportedMediaType(ClientError):
    status = 415
    default_detail = "Unsupported content type"


class ReadOnlyStore(ClientError):
    status = 400
    scim_type = "mutability"
    default_detail = "The user store is read-only"


class NotSupported(GatewayError):
    status = 501
    soap_fault = "Server"
    default_detail = "Not implemented"


class StoreUnavailable(GatewayError):
    status = 503
    default_detail = "The user store is unavailable"


class ConcurrentUpdate(GatewayError):
    """Optimistic concurrency lost too many times in a row."""

    status = 409
    soap_fault = "Server"
    default_detail = "The resource is being changed concurrently; retry"


class ConfigError(Exception):
    """The configuration is not valid; raised before the service starts."""
