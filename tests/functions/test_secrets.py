"""Key Vault secrets through the real ``azure-keyvault-secrets`` client: the network is replaced at
the SDK's own transport hook, which answers with the SDK's real response type (the challenge 401
first, then the secret bundle), so authentication, parsing and errors are the SDK's own."""

from __future__ import annotations

import io
import json
import logging
import time
from typing import Any

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest, HttpResponse
from azure.core.rest._requests_basic import RestRequestsTransportResponse

from functions.gateway import Gateway
from functions.secrets import KeyVaultSecrets, SecretsUnavailable, load_settings, with_secrets
from functions.settings import GatewaySettings

VAULT = "https://llmp-test.vault.azure.net"
CHALLENGE = ('Bearer authorization="https://login.microsoftonline.com/tid", '
             'resource="https://vault.azure.net"')


class VaultTransport(HttpTransport):
    """Key Vault as the SDK sees it: 401 + challenge without a token, then secrets or 404."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = secrets
        self.authorized: list[str] = []

    def __enter__(self) -> VaultTransport:
        return self

    def __exit__(self, *args: object) -> None:
        pass

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:  # type: ignore[override]
        auth = request.headers.get("Authorization")
        if auth is None:
            return _response(request, 401, {}, {"WWW-Authenticate": CHALLENGE})
        self.authorized.append(auth)
        name = request.url.split("/secrets/", 1)[1].split("/")[0].split("?")[0]
        if name not in self.secrets:
            return _response(request, 404, {"error": {
                "code": "SecretNotFound", "message": f"A secret with (name/id) {name} was not "
                "found in this key vault."}})
        return _response(request, 200, {
            "value": self.secrets[name], "id": f"{VAULT}/secrets/{name}/0123456789abcdef",
            "attributes": {"enabled": True, "created": 1700000000, "updated": 1700000000,
                           "recoveryLevel": "Recoverable+Purgeable"}, "tags": {}})


def _response(request: HttpRequest, status: int, body: dict[str, Any],
              headers: dict[str, str] | None = None) -> HttpResponse:
    """The response type azure-core's own RequestsTransport returns, over a requests.Response."""
    r = requests.Response()
    r.status_code = status
    r.headers.update({"Content-Type": "application/json; charset=utf-8", **(headers or {})})
    r.raw = io.BytesIO(json.dumps(body).encode())
    response = RestRequestsTransportResponse(request=request, internal_response=r)
    response.read()
    return response


class Credential:
    """What DefaultAzureCredential gives in Azure (a managed identity's token)."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken("managed-identity-token", int(time.time()) + 3600)


SECRETS = {"llmp-database-url": "postgresql://llmp:s3cret-pw@db.internal/llmp",
           "llmp-entra-audiences": "api://llmp,00000000-1111-2222-3333-444444444444",
           "vllm-api-key": "vllm-s3cret-key"}
NAMES = {"DATABASE_URL": "llmp-database-url", "LLMP_ENTRA_AUDIENCES": "llmp-entra-audiences",
         "LLMP_TEST_VLLM_KEY": "vllm-api-key"}


def vault(secrets: dict[str, str] | None = None, names: dict[str, str] | None = None
          ) -> tuple[KeyVaultSecrets, VaultTransport, Credential]:
    transport, cred = VaultTransport(dict(secrets or SECRETS)), Credential()
    return (KeyVaultSecrets(VAULT, names or NAMES, cred, transport=transport, retry_total=0),
            transport, cred)


def test_secrets_resolve_into_settings_and_env(monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("LLMP_TEST_VLLM_KEY", raising=False)
    caplog.set_level(logging.DEBUG)
    kv, transport, cred = vault()
    base = GatewaySettings(key_vault_url=VAULT, key_vault_secrets=NAMES)
    settings, used = load_settings(base, kv)
    assert used is kv
    assert settings.database_url == SECRETS["llmp-database-url"]
    assert settings.entra_audiences == ["api://llmp", "00000000-1111-2222-3333-444444444444"]
    import os

    assert os.environ["LLMP_TEST_VLLM_KEY"] == "vllm-s3cret-key"  # a backend's api_key_env
    monkeypatch.delenv("LLMP_TEST_VLLM_KEY")
    assert transport.authorized == ["Bearer managed-identity-token"] * 3
    assert cred.scopes and cred.scopes[0].startswith("https://vault.azure.net")
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "llmp-database-url" in logged  # names are logged ...
    assert not any(v in logged for v in ("s3cret-pw", "vllm-s3cret-key"))  # ... values never


def test_a_missing_secret_stops_start_up() -> None:
    kv, _, _ = vault(names={"DATABASE_URL": "nope"})
    with pytest.raises(SecretsUnavailable, match=r"'nope'.*ResourceNotFoundError"):
        kv.load()


async def test_refresh_picks_up_a_rotated_secret() -> None:
    kv, transport, _ = vault()
    kv.load()
    assert not await kv.refresh()
    transport.secrets["llmp-database-url"] = "postgresql://llmp:rotated@db.internal/llmp"
    assert await kv.refresh()
    assert kv.values["DATABASE_URL"].endswith("rotated@db.internal/llmp")
    del transport.secrets["llmp-database-url"]  # a failing refresh keeps the values in use
    assert not await kv.refresh()
    assert kv.values["DATABASE_URL"].endswith("rotated@db.internal/llmp")


async def test_gateway_refresh_replaces_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMP_TEST_VLLM_KEY", raising=False)
    kv, transport, _ = vault()
    gw = Gateway(with_secrets(GatewaySettings(), kv.load()))
    gw.vault = kv
    assert not await gw.refresh_secrets()
    transport.secrets["llmp-entra-audiences"] = "api://llmp-v2"
    assert await gw.refresh_secrets()
    assert gw.settings.entra_audiences == ["api://llmp-v2"]
    await gw.aclose()


def test_without_a_vault_settings_are_unchanged() -> None:
    s = GatewaySettings()
    assert load_settings(s) == (s, None)
    assert with_secrets(s, {}) is s
