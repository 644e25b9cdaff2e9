"""Secrets from Azure Key Vault: the settings named in ``LLMP_KEY_VAULT_SECRETS`` are read from
``LLMP_KEY_VAULT_URL`` with ``DefaultAzureCredential`` (the Function App's managed identity) once at
start-up, and again every ``LLMP_KEY_VAULT_REFRESH_S``. Locally they come from the environment or
``.env`` as any other setting.

Values are never logged: only secret *names* and error types are.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from functions.settings import GatewaySettings

log = logging.getLogger(__name__)


class SecretsUnavailable(RuntimeError):
    """A secret could not be read at start-up (the gateway refuses to start without it)."""


class KeyVaultSecrets:
    """Reads a fixed set of secrets; ``client_kwargs`` go to the SDK client (``transport``,
    retry settings), which is how the tests drive the real SDK without a network."""

    def __init__(self, vault_url: str, names: Mapping[str, str],
                 credential: TokenCredential | None = None, **client_kwargs: Any) -> None:
        self._url, self._names = vault_url, dict(names)
        self._credential = credential
        self._client_kwargs = client_kwargs
        self.values: dict[str, str] = {}

    def load(self) -> dict[str, str]:
        """Read every named secret (blocking; start-up). Returns setting name -> value."""
        from azure.core.exceptions import AzureError
        from azure.keyvault.secrets import SecretClient

        credential = self._credential
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        client = SecretClient(self._url, credential, **self._client_kwargs)
        values: dict[str, str] = {}
        try:
            for setting, secret in self._names.items():
                try:
                    value = client.get_secret(secret).value
                except AzureError as e:
                    log.error("key vault secret unavailable",
                              extra={"secret": secret, "error": type(e).__name__})
                    raise SecretsUnavailable(f"Key Vault secret {secret!r} (for {setting}) could "
                                             f"not be read: {type(e).__name__}") from None
                if value is None:
                    raise SecretsUnavailable(f"Key Vault secret {secret!r} has no value")
                values[setting] = value
        finally:
            client.close()
        log.info("key vault secrets loaded", extra={"secrets": sorted(self._names.values())})
        self.values = values
        return values

    async def refresh(self) -> bool:
        """Read them again (in a thread); True if any value changed. A failure keeps the values
        in use and is logged."""
        before = dict(self.values)
        try:
            await asyncio.to_thread(self.load)
        except SecretsUnavailable:
            self.values = before
            return False
        return self.values != before


def with_secrets(settings: GatewaySettings, values: Mapping[str, str]) -> GatewaySettings:
    """Settings with the secrets applied: names of settings fields (or their env aliases) override
    them; other names (a backend's ``api_key_env``) are put in the environment."""
    from functions.settings import GatewaySettings

    fields = GatewaySettings.model_fields
    by_env: dict[str, str] = {}
    for name, f in fields.items():
        by_env[name.upper()] = name
        by_env[("LLMP_" + name).upper()] = name
        alias = f.validation_alias
        for choice in getattr(alias, "choices", ()):
            by_env[str(choice).upper()] = name
    overrides: dict[str, Any] = {}
    for key, value in values.items():
        field_name = by_env.get(key.upper())
        if field_name is None:
            os.environ[key] = value
            continue
        overrides[field_name] = value
    if not overrides:
        return settings
    data = settings.model_dump()
    data.update(overrides)
    return GatewaySettings.model_validate(data)


def load_settings(settings: GatewaySettings, vault: KeyVaultSecrets | None = None
                  ) -> tuple[GatewaySettings, KeyVaultSecrets | None]:
    """Start-up: resolve the configured secrets into the settings (no vault configured: as is)."""
    if not settings.key_vault_url or not settings.key_vault_secrets:
        return settings, None
    vault = vault or KeyVaultSecrets(settings.key_vault_url, settings.key_vault_secrets)
    return with_secrets(settings, vault.load()), vault
