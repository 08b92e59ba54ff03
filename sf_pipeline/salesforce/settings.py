"""The org's settings, declared once (``OrgSettings``, ``ExtractSettings``): how to reach and log in to one org,
and how its records are read. ``SalesforceResource`` inherits these fields; the command line reads them with
``from_env``.

The org's login URL has no default: a deployment that forgets ``SF_LOGIN_URL`` fails naming it rather than
talking to whatever answers on localhost (the demo and the tests set it to their emulator).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..common.env_settings import EnvSettings, setting
from ..errors import SettingsError

DEFAULT_API_VERSION = "62.0"
REST_MAX_RECORDS = 10_000  # docs/performance.md, "Bulk or REST"
PAGE_RECORDS = 250_000


@dataclass(frozen=True)
class RetryPolicy:
    """Retries for 429, 5xx and connection errors (``retries``): exponential backoff with full jitter, at most
    ``max_backoff_s`` a wait; a Retry-After honoured up to ``max_retry_after_s``."""

    max_attempts: int = 6
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 120.0


class OrgSettings(EnvSettings):
    """How to reach and log in to one org."""

    login_url: str | None = setting(
        None,
        "SF_LOGIN_URL",
        "OAuth host: https://login.salesforce.com, your My Domain, or the emulator (required)",
    )
    client_id: str = setting("demo-client-id", "SF_CLIENT_ID", "the connected app's consumer key")
    client_secret: str = setting(
        "demo-client-secret", "SF_CLIENT_SECRET", "the connected app's consumer secret", secret=True
    )
    username: str | None = setting(None, "SF_USERNAME", "username-password flow: the user")
    password: str | None = setting(
        None, "SF_PASSWORD", "username-password flow: the password with the security token appended", secret=True
    )
    refresh_token: str | None = setting(None, "SF_REFRESH_TOKEN", "refresh-token flow: the token", secret=True)
    access_token: str | None = setting(
        None, "SF_ACCESS_TOKEN", "a given session (cannot be renewed when it expires)", secret=True
    )
    instance_url: str | None = setting(None, "SF_INSTANCE_URL", "the org's URL for a given session")
    api_version: str = setting(
        DEFAULT_API_VERSION, "SF_API_VERSION", "one version for every call; 58.0+ pages results in parallel"
    )
    max_retries: int = setting(
        RetryPolicy.max_attempts, "SF_MAX_RETRIES", "attempts of a request Salesforce refused with 429/5xx", ge=1
    )
    timeout_s: float = setting(120.0, None, "seconds a request may wait for Salesforce's answer", gt=0)

    def validate_login(self) -> None:
        if not self.login_url:
            raise SettingsError(
                f"{self.variable('login_url')} is not set: the org's OAuth host (https://login.salesforce.com, "
                "https://test.salesforce.com or your My Domain); `sf-pipeline demo` sets it to its emulator"
            )

    def salesforce_settings(self) -> SalesforceSettings:
        """What a client is made with (this model's values, whichever subclass holds them)."""
        return SalesforceSettings(**{name: getattr(self, name) for name in OrgSettings.model_fields})


class SalesforceSettings(OrgSettings):
    """What a ``SalesforceClient`` is made with: the org's settings, and (tests, benches) a retry policy
    of its own. Secrets are kept out of ``repr``."""

    retry: RetryPolicy | None = None  # None: max_retries attempts with the default backoff

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        hidden = {"client_secret", "password", "refresh_token", "access_token"}
        return [(k, v) for k, v in super().__repr_args__() if k not in hidden]

    def validate(self) -> None:
        self.validate_login()

    @property
    def retry_policy(self) -> RetryPolicy:
        return self.retry or RetryPolicy(max_attempts=self.max_retries)

    @property
    def flow(self) -> str:
        if self.access_token:
            return "access_token"
        if self.refresh_token:
            return "refresh_token"
        if self.username and self.password:
            return "password"
        return "client_credentials"

    @property
    def secrets(self) -> list[str]:
        """Every secret value, for redaction."""
        return [s for s in (self.client_secret, self.password, self.refresh_token, self.access_token) if s]


class ExtractSettings(EnvSettings):
    """How the org's records are read: Bulk result pages, downloads at once, the REST threshold."""

    max_records_per_page: int = setting(
        PAGE_RECORDS, "SF_PIPELINE_PAGE_RECORDS", "records per Bulk result page (maxRecords)", ge=1
    )
    download_concurrency: int | None = setting(
        None,
        "SF_PIPELINE_DOWNLOAD_CONCURRENCY",
        "result pages downloaded at once; unset: from the pod's memory (2 or 4)",
        ge=1,
    )
    rest_max_records: int = setting(
        REST_MAX_RECORDS,
        "SF_PIPELINE_REST_MAX_RECORDS",
        "a Bulk object's window of at most this many records is read by REST (no job floor, no daily job "
        "spent; REST's first answer gives the size); 0: always Bulk",
        ge=0,
    )

    def extract_options(self):  # type: ignore[no-untyped-def]  # -> ExtractOptions (bulk imports this module)
        from .bulk import ExtractOptions

        return ExtractOptions(
            max_records=self.max_records_per_page,
            concurrency=self.download_concurrency,
            rest_max_records=self.rest_max_records,
        )
