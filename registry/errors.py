"""Registry errors; the API maps them to HTTP statuses."""


class RegistryError(Exception):
    """Base class."""


class NotFound(RegistryError):
    """The named row does not exist (404)."""


class Conflict(RegistryError):
    """The request contradicts the current state (409); `code` is the error body's code."""

    code = "conflict"


class AlreadyFinished(Conflict):
    """The job already ended: too late to cancel it (409 `already_finished`)."""

    code = "already_finished"


class CancelRequested(Conflict):
    """A worker may not record a result: the job was cancelled first."""

    code = "cancelled"


class IntegrityFailure(RegistryError):
    """A stored file does not match what the registry recorded (size or sha256)."""
