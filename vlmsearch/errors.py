"""Typed errors. Each message tells a person what went wrong and what to do; only the CLI and
server turn them into exit codes or HTTP statuses."""


class VlmsearchError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(VlmsearchError):
    """A setting or profile is wrong."""


class UnknownModelError(ConfigError):
    def __init__(self, role: str, name: str, known: list[str]):
        super().__init__(f"unknown {role} model {name!r}; known: {', '.join(sorted(known)) or 'none'}")


class MissingDependencyError(VlmsearchError):
    def __init__(self, package: str, purpose: str):
        super().__init__(f"{purpose} needs the Python package {package!r}: pip install {package}")


class MissingWeightsError(VlmsearchError):
    """Model weights are not on this machine (and could not be fetched)."""


class BadInputError(VlmsearchError):
    """A file or query the user gave cannot be used."""


class UnsupportedFileError(BadInputError):
    """The file's content is not of a type we read (whatever its name says)."""


class TooLargeError(BadInputError):
    """A file or image over a configured limit."""


class StoreError(VlmsearchError):
    """The store refused an operation or failed while in use."""


class StoreUnavailableError(StoreError):
    """The store's server cannot be reached (it went away mid-session, or never came up)."""


class ModelServerError(VlmsearchError):
    """A remote model endpoint failed or answered something unusable."""
