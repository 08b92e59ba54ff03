"""The project's exception tree: every failure sf_pipeline raises on purpose derives from
``SfPipelineError``, so a caller catches the project's failures precisely (as httpx does with
``HTTPError``) and lets programming errors through. Each message names the object, field, file or setting.

    SfPipelineError
    ├── SettingsError        a setting that cannot work (names the variable or option)
    │   ├── WarehouseConfigError
    │   └── PodTooSmallError  a memory limit too small for any load (names the minimum)
    ├── CatalogError         a catalog entry that cannot be used
    ├── InvalidIdentifierError  a name that is not a plain Salesforce API name
    ├── SalesforceError      the org refused or failed (salesforce/errors.py: AuthError, JobFailedError, ...)
    ├── MalformedCsvError    a CSV that cannot be split safely
    ├── LoadError            a chunk that could not be read or loaded
    ├── ObjectBusyError      another process is loading the object
    └── InjectedFault        a test's fault point (never in production)

Classes that were ``ValueError``s before the tree existed still are, so older ``except ValueError``
callers keep working.
"""

from __future__ import annotations


class SfPipelineError(Exception):
    """Base of every error sf_pipeline raises on purpose."""


class SettingsError(SfPipelineError, ValueError):
    """A setting that cannot work; the message names the environment variable or option."""


class WarehouseConfigError(SettingsError):
    """A warehouse or staging setting that cannot work; the message names the setting."""


class PodTooSmallError(SettingsError):
    """The memory limit leaves a load too little to run; the message names the limit and the minimum."""


class CatalogError(SfPipelineError, ValueError):
    """A catalog entry that cannot be used; the message names the object and the setting."""


class InvalidIdentifierError(SfPipelineError, ValueError):
    """An object or field name that is not a plain Salesforce API name."""


class MalformedCsvError(SfPipelineError, ValueError):
    """A CSV that cannot be split safely; the message names the file and the byte offset."""


class LoadError(SfPipelineError):
    """A chunk that could not be read or loaded; names the object and the file."""


class ObjectBusyError(SfPipelineError):
    """Another process holds the object's lock: two loads of one object never run at once."""


class InjectedFault(SfPipelineError):
    """Raised at a fault point; the message names the point and the object."""
