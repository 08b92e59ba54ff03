"""Connection settings for one Salesforce org, from arguments or environment variables.

The org's login URL has no default: a deployment that forgets ``SF_LOGIN_URL`` fails naming it rather than
talking to whatever answers on localhost (the demo and the tests set it to their emulator).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import SettingsError

DEFAULT_API_VERSION = "62.0"
ENV = {
    "login_url": "SF_LOGIN_URL",
    "client_id": "SF_CLIENT_ID",
    "client_secret": "SF_CLIENT_SECRET",
    "username": "SF_USERNAME",
    "password": "SF_PASSWORD",
    "refresh_token": "SF_REFRESH_TOKEN",
    "access_token": "SF_ACCESS_TOKEN",
    "instance_url": "SF_INSTANCE_URL",
    "api_version": "SF_API_VERSION",
}


@dataclass(frozen=True)
class RetryPolicy:
    """Retries for 429, 5xx and connection errors (``retries``): exponential backoff with full jitter, at most
    ``max_backoff_s`` a wait; a Retry-After honoured up to ``max_retry_after_s``."""

    max_attempts: int = 6
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 120.0


@dataclass(frozen=True)
class SalesforceSettings:
    """How to reach and log in to one org. Secrets are kept out of ``repr``."""

    login_url: str | None = None
    client_id: str = "demo-client-id"
    client_secret: str = field(default="demo-client-secret", repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)
    instance_url: str | None = None
    api_version: str = DEFAULT_API_VERSION
    timeout_s: float = 120.0
    retry: RetryPolicy = RetryPolicy()

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> SalesforceSettings:
        env = os.environ if environ is None else environ
        values = {name: env[var] for name, var in ENV.items() if env.get(var)}
        return cls(**{**values, **{k: v for k, v in overrides.items() if v is not None}})

    def validate(self) -> None:
        if not self.login_url:
            raise SettingsError(
                f"{ENV['login_url']} is not set: the org's OAuth host (https://login.salesforce.com, "
                "https://test.salesforce.com or your My Domain); `sf-pipeline demo` sets it to its emulator"
            )

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
