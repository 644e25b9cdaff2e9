"""Entra ID access tokens: ``Authorization: Bearer <JWT>`` checked against the directory's JWKS.

Signature (RS256 only: ``alg: none`` and HMAC tokens are refused before any key is looked at),
issuer, audience, expiry and not-before with a small clock skew. The JWKS is cached for
``entra_jwks_ttl_s`` and fetched again when a token names an unknown ``kid`` (Entra rotates its keys),
at most once per ``entra_jwks_min_refresh_s`` so that made-up kids cannot turn into a flood of
fetches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from functions.errors import AuthenticationFailed, DependencyUnavailable

log = logging.getLogger(__name__)

ALGORITHMS = ("RS256",)


@dataclass(frozen=True, slots=True)
class EntraIdentity:
    subject: str
    """The object id (``oid``) of the user or service principal, else ``sub``."""
    roles: tuple[str, ...]
    groups: tuple[str, ...]
    expires_at: float


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


class EntraVerifier:
    def __init__(self, http: httpx.AsyncClient, jwks_url: str, *, audiences: list[str],
                 issuers: list[str], skew_s: int = 60, ttl_s: int = 3600,
                 min_refresh_s: float = 30.0, timeout_s: float = 3.0) -> None:
        self._http, self._url = http, jwks_url
        self._audiences, self._issuers = audiences, issuers
        self._skew, self._ttl, self._min_refresh, self._timeout = (skew_s, ttl_s, min_refresh_s,
                                                                  timeout_s)
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> EntraIdentity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise _rejected("malformed token") from None
        if header.get("alg") not in ALGORITHMS:
            raise _rejected(f"algorithm {header.get('alg')!r} is not accepted")
        key = await self._key(str(header.get("kid", "")))
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=list(ALGORITHMS), audience=self._audiences,
                issuer=self._issuers, leeway=self._skew,
                options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise _rejected("token expired") from None
        except jwt.ImmatureSignatureError:
            raise _rejected("token not yet valid") from None
        except jwt.InvalidAudienceError:
            raise _rejected("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise _rejected("wrong issuer") from None
        except jwt.InvalidSignatureError:
            raise _rejected("bad signature") from None
        except jwt.InvalidTokenError as e:
            raise _rejected(type(e).__name__) from None
        return EntraIdentity(str(claims.get("oid") or claims.get("sub") or ""),
                             _strings(claims.get("roles")), _strings(claims.get("groups")),
                             float(claims["exp"]))

    async def _key(self, kid: str) -> jwt.PyJWK:
        stale = time.monotonic() - self._fetched_at > self._ttl
        if stale or kid not in self._keys:
            await self._refresh(force=not stale)
        key = self._keys.get(kid)
        if key is None:
            raise _rejected("unknown signing key")
        return key

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            since = time.monotonic() - self._fetched_at
            if since < self._min_refresh or (not force and since <= self._ttl):
                return  # another request just fetched it, or a made-up kid asked too soon
            try:
                r = await self._http.get(self._url, timeout=self._timeout)
                r.raise_for_status()
                keys = {k["kid"]: jwt.PyJWK(k) for k in r.json()["keys"]
                        if k.get("kid") and k.get("kty") == "RSA"}
            except (httpx.HTTPError, ValueError, KeyError, jwt.PyJWKError) as e:
                log.warning("jwks fetch failed", extra={"error": type(e).__name__})
                if not self._keys:
                    raise DependencyUnavailable("The identity provider's keys are unavailable."
                                                ) from None
                return  # keep serving with the keys we have
            self._keys, self._fetched_at = keys, time.monotonic()


def _strings(v: object) -> tuple[str, ...]:
    return tuple(str(x) for x in v) if isinstance(v, list) else ()


def _rejected(why: str) -> AuthenticationFailed:
    return AuthenticationFailed(f"Invalid access token: {why}.", code="invalid_token")
