"""OAuth token endpoint: client credentials, password and refresh-token flows."""

from __future__ import annotations

import base64
import logging
import secrets
import time
from urllib.parse import parse_qs

from .state import EmulatorState

log = logging.getLogger(__name__)


class AuthEndpoints:
    state: EmulatorState

    def _token(self) -> None:
        cfg = self.state.config
        if self._fault("token", None, None):
            return
        form = {k: v[-1] for k, v in parse_qs(self._body().decode()).items()}
        grant = form.get("grant_type", "")
        if form.get("client_id") != cfg.client_id:
            return self._json(400, {"error": "invalid_client_id", "error_description": "client identifier invalid"})
        if form.get("client_secret") != cfg.client_secret:
            return self._json(400, {"error": "invalid_client", "error_description": "invalid client credentials"})
        if grant == "password":
            if form.get("username") != cfg.username or form.get("password") != cfg.password:
                return self._json(400, {"error": "invalid_grant", "error_description": "authentication failure"})
        elif grant == "refresh_token":
            if form.get("refresh_token") != cfg.refresh_token:
                return self._json(400, {"error": "invalid_grant", "error_description": "expired access/refresh token"})
        elif grant != "client_credentials":
            return self._json(400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"})
        host = self.headers.get("Host") or f"{cfg.host}:{cfg.port}"
        payload = {
            "access_token": self.state.issue_token(),
            "instance_url": f"http://{host}",
            "id": f"http://{host}/id/00D5g000000DEMO/0055g000000DEMOAAA",
            "token_type": "Bearer",
            "issued_at": str(int(time.time() * 1000)),
            "signature": base64.b64encode(secrets.token_bytes(32)).decode(),
            "scope": "api refresh_token",
        }
        if grant == "password":
            payload["refresh_token"] = cfg.refresh_token
        self._json(200, payload)
