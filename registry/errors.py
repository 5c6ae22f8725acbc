"""Registry errors; the API maps them to HTTP statuses."""


class RegistryError(Exception):
    """Base class."""


class NotFound(RegistryError):
    """The named row does not exist (404)."""


class Conflict(RegistryError):
    """The request contradicts the current state, e.g. cancelling a finished job (409)."""


class IntegrityFailure(RegistryError):
    """A stored file does not match what the registry recorded (size or sha256)."""
