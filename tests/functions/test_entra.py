"""Entra ID tokens: signed here with key pairs made here, the JWKS served on loopback; every way a
token is refused, JWKS refresh on an unknown ``kid``, and the role/group -> tenant mapping."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from functions.auth import Authenticator
from functions.db import Database
from functions.entra import EntraVerifier, looks_like_jwt
from functions.errors import AuthenticationFailed, DependencyUnavailable, PermissionDenied
from functions.keys import KeyStore
from functions.tenants import TenantStore
from tests.support.servers import serve_asgi
from tests.support.tenancy import new_tenant

TID = "11111111-2222-3333-4444-555555555555"
AUD = "api://llmp-test"
ISS = f"https://login.microsoftonline.com/{TID}/v2.0"


@dataclass
class Signer:
    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def jwk(self) -> dict[str, Any]:
        d = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {**d, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def token(self, kid: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISS, "aud": AUD, "iat": now, "nbf": now, "exp": now + 600,
                "oid": "user-1", "roles": [], **claims}
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": kid or self.kid})


@dataclass
class Jwks:
    signers: list[Signer]
    hits: int = 0


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


@pytest.fixture(scope="module")
def jwks(signer: Signer) -> Iterator[tuple[str, Jwks]]:
    state = Jwks([signer])

    async def keys(request: Request) -> JSONResponse:
        state.hits += 1
        return JSONResponse({"keys": [s.jwk() for s in state.signers]})

    with serve_asgi(Starlette(routes=[Route("/keys", keys)])) as url:
        yield f"{url}/keys", state


@pytest.fixture
async def verifier(jwks: tuple[str, Jwks]) -> AsyncIterator[EntraVerifier]:
    async with httpx.AsyncClient() as http:
        yield EntraVerifier(http, jwks[0], audiences=[AUD], issuers=[ISS], skew_s=60,
                            min_refresh_s=0)


async def test_valid_token(verifier: EntraVerifier, signer: Signer) -> None:
    ident = await verifier.verify(signer.token(roles=["App.Team"], groups=["g1"]))
    assert ident.subject == "user-1" and ident.roles == ("App.Team",) and ident.groups == ("g1",)


async def test_expiry_within_the_clock_skew_is_accepted(verifier: EntraVerifier,
                                                        signer: Signer) -> None:
    await verifier.verify(signer.token(exp=int(time.time()) - 30))


def _b64(d: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(("case", "why"), [
    ("expired", "expired"),
    ("not_yet_valid", "not yet valid"),
    ("wrong_audience", "audience"),
    ("wrong_issuer", "issuer"),
    ("bad_signature", "signature"),
    ("alg_none", "algorithm 'none'"),
    ("hs256_with_public_key", "algorithm 'HS256'"),
    ("unknown_kid", "unknown signing key"),
    ("no_exp", "MissingRequiredClaimError"),
    ("garbage", "malformed"),
])
async def test_rejections(verifier: EntraVerifier, signer: Signer, case: str, why: str) -> None:
    now = int(time.time())
    token = {
        "expired": lambda: signer.token(exp=now - 120),
        "not_yet_valid": lambda: signer.token(nbf=now + 300),
        "wrong_audience": lambda: signer.token(aud="api://someone-else"),
        "wrong_issuer": lambda: signer.token(iss="https://login.microsoftonline.com/other/v2.0"),
        "bad_signature": lambda: Signer(kid=signer.kid).token(),  # same kid, another key
        "alg_none": lambda: (_b64({"alg": "none", "kid": signer.kid, "typ": "JWT"}) + "."
                             + _b64({"iss": ISS, "aud": AUD, "exp": now + 600}) + "."),
        "hs256_with_public_key": lambda: jwt.encode(
            {"iss": ISS, "aud": AUD, "exp": now + 600}, "a-shared-secret-known-to-the-attacker-0123456789",
            algorithm="HS256", headers={"kid": signer.kid}),
        "unknown_kid": lambda: Signer().token(),
        "no_exp": lambda: jwt.encode({"iss": ISS, "aud": AUD}, signer.key, algorithm="RS256",
                                     headers={"kid": signer.kid}),
        "garbage": lambda: "eyJhbGciOi.not-base64.x",
    }[case]()
    with pytest.raises(AuthenticationFailed, match=why) as e:
        await verifier.verify(token)
    assert e.value.status == 401 and e.value.code == "invalid_token"


async def test_unknown_kid_refreshes_the_jwks(jwks: tuple[str, Jwks], signer: Signer) -> None:
    url, state = jwks
    rotated = Signer()
    async with httpx.AsyncClient() as http:
        v = EntraVerifier(http, url, audiences=[AUD], issuers=[ISS], min_refresh_s=0)
        await v.verify(signer.token())
        state.signers.append(rotated)  # Entra publishes a new key
        try:
            hits = state.hits
            assert (await v.verify(rotated.token())).subject == "user-1"
            assert state.hits == hits + 1
            await v.verify(signer.token())  # known kids cost no fetch
            assert state.hits == hits + 1
        finally:
            state.signers.remove(rotated)


async def test_unknown_kids_cannot_hammer_the_jwks(jwks: tuple[str, Jwks], signer: Signer
                                                   ) -> None:
    url, state = jwks
    async with httpx.AsyncClient() as http:
        v = EntraVerifier(http, url, audiences=[AUD], issuers=[ISS], min_refresh_s=60)
        await v.verify(signer.token())
        hits = state.hits
        for _ in range(5):
            with pytest.raises(AuthenticationFailed, match="unknown signing key"):
                await v.verify(Signer().token())
        assert state.hits == hits


async def test_unreachable_jwks_is_503(dead_url: str, signer: Signer) -> None:
    async with httpx.AsyncClient() as http:
        v = EntraVerifier(http, f"{dead_url}/keys", audiences=[AUD], issuers=[ISS])
        with pytest.raises(DependencyUnavailable):
            await v.verify(signer.token())


def test_jwt_detection() -> None:
    assert looks_like_jwt("eyJa.eyJb.c") and not looks_like_jwt("sk-llmp-abc")


@pytest.fixture
async def auth(postgres_url: str, verifier: EntraVerifier) -> AsyncIterator[Authenticator]:
    db = Database(postgres_url, min_size=0, max_size=2)
    yield Authenticator(KeyStore(db), None, 60, entra=verifier, tenants=TenantStore(db, 0),
                        entra_admin_role="LLMP.Admin")
    await db.aclose()


async def test_app_role_and_group_map_to_a_tenant(auth: Authenticator, signer: Signer,
                                                  postgres_url: str) -> None:
    role, group = "Team." + uuid.uuid4().hex[:6], str(uuid.uuid4())
    by_role, _ = await new_tenant(postgres_url, entra_roles=[role])
    by_group, _ = await new_tenant(postgres_url, entra_groups=[group])
    p = await auth.authenticate(f"Bearer {signer.token(roles=[role])}")
    assert (p.tenant, p.key_id, p.is_admin) == (by_role.name, "entra:user-1", False)
    p = await auth.authenticate(f"Bearer {signer.token(groups=[group])}")
    assert p.tenant_id == str(by_group.tenant_id)
    with pytest.raises(PermissionDenied, match="several tenants"):
        await auth.authenticate(f"Bearer {signer.token(roles=[role], groups=[group])}")
    with pytest.raises(PermissionDenied, match="not mapped"):
        await auth.authenticate(f"Bearer {signer.token(roles=['Nobody'])}")
    admin = await auth.authenticate(f"Bearer {signer.token(roles=['LLMP.Admin'])}")
    assert admin.is_admin and admin.tenant_id == ""


async def test_api_keys_still_work_beside_entra(auth: Authenticator, postgres_url: str) -> None:
    rec, key = await new_tenant(postgres_url)
    assert (await auth.authenticate(f"Bearer {key}")).tenant == rec.name


def test_entra_token_through_the_gateway(jwks: tuple[str, Jwks], signer: Signer,
                                         gateway_settings: Any, postgres_url: str) -> None:
    """An app's managed identity calls the gateway with its Entra token; limits apply to its
    tenant as to a key's."""
    from functions.asgi import create_app
    from functions.gateway import Gateway
    from tests.support.tenancy import tenant_with_key

    role = "Team." + uuid.uuid4().hex[:6]
    tenant_with_key(postgres_url, rpm_limit=50, entra_roles=[role])
    settings = gateway_settings.model_copy(update={
        "entra_tenant_id": TID, "entra_audiences": [AUD], "entra_jwks_url": jwks[0]})
    body = {"model": "mock", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    with serve_asgi(create_app(Gateway(settings))) as url:
        ok = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60,  # a new gateway
                        headers={"authorization": f"Bearer {signer.token(roles=[role])}"})
        assert ok.status_code == 200 and ok.headers["x-ratelimit-limit-requests"] == "50"
        expired = signer.token(roles=[role], exp=int(time.time()) - 3600)
        r = httpx.post(f"{url}/v1/chat/completions", json=body,
                       headers={"authorization": f"Bearer {expired}"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
        admin = signer.token(roles=["LLMP.Admin"])
        r = httpx.get(f"{url}/v1/admin/tenants", headers={"authorization": f"Bearer {admin}"})
        assert r.status_code == 200
