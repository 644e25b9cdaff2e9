"""Knowledge bases end to end through the real gateway: the real embedding model (all-MiniLM-L6-v2
from its wheel), Qdrant local mode in a temp folder, the mock backend and SmolLM2."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from functions.asgi import create_app
from functions.gateway import Gateway
from functions.rag.settings import RagSettings
from functions.settings import GatewaySettings
from tests.support.pdf import make_pdf
from tests.support.servers import serve_asgi

CORPUS: dict[str, tuple[bytes, str]] = {
    "handbook.md": (b"# Employee handbook\n\n## Vacation\nEvery employee gets 27 days of paid vacation "
                    b"per calendar year. Unused vacation days expire on 31 March of the next year.\n\n"
                    b"## Expenses\nSubmit receipts within 30 days. Meals while travelling are capped at "
                    b"40 euros per day.\n", "text/markdown"),
    "security.html": (b"<html><head><title>Security rules</title></head><body><h1>Security</h1>"
                      b"<h2>Badges</h2><p>A lost badge must be reported to the security desk at "
                      b"extension 4242 within one hour.</p><h2>VPN</h2><p>The VPN token rotates every "
                      b"90 days.</p></body></html>", "text/html"),
    "kitchen.txt": (b"The office kitchen is cleaned every Friday afternoon. Coffee beans are ordered "
                    b"from Ristretto Roasters each month.", "text/plain"),
    "onboarding.pdf": (make_pdf([["Onboarding guide.", "New hires receive a laptop on their first day."],
                                 ["The onboarding buddy program lasts six weeks.",
                                  "Each buddy meets the new hire twice a week."]],
                                title="Onboarding"), "application/pdf"),
}
QUESTIONS = [
    ("How many days of paid vacation do I get per year?", "handbook.md"),
    ("Who do I report a lost badge to?", "security.html"),
    ("How long does the onboarding buddy program last?", "onboarding.pdf"),
    ("When is the office kitchen cleaned?", "kitchen.txt"),
]
KB = "corpus"


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def upload(url: str, key: str, kb: str, name: str, data: bytes, media_type: str = "text/plain",
           **params: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/rag/kbs/{kb}/documents", params={"filename": name, **params},
                      content=data, headers={**auth(key), "content-type": media_type}, timeout=120)


def query(url: str, key: str, kb: str, q: str, **kw: Any) -> list[dict[str, Any]]:
    r = httpx.post(f"{url}/v1/rag/kbs/{kb}/query", json={"query": q, **kw}, headers=auth(key),
                   timeout=60)
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def chat(url: str, key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=auth(key), timeout=120)


def documents(url: str, key: str, kb: str) -> list[str]:
    r = httpx.get(f"{url}/v1/rag/kbs/{kb}/documents", headers=auth(key), timeout=30)
    assert r.status_code == 200
    return [d["document_id"] for d in r.json()["data"]]


@pytest.fixture(scope="module")
def corpus(gateway_url: str, api_key: str) -> str:
    for name, (data, media_type) in CORPUS.items():
        r = upload(gateway_url, api_key, KB, name, data, media_type)
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "created" and r.json()["chunks"] >= 1
    return KB


def test_corpus_is_listed(gateway_url: str, api_key: str, corpus: str) -> None:
    assert documents(gateway_url, api_key, corpus) == sorted(CORPUS)
    kbs = httpx.get(f"{gateway_url}/v1/rag/kbs", headers=auth(api_key)).json()["data"]
    assert {"id": corpus, "object": "rag.kb", "documents": 4, "chunks": 7} in kbs
    assert "Onboarding" in [d["title"] for d in httpx.get(
        f"{gateway_url}/v1/rag/kbs/{corpus}/documents", headers=auth(api_key)).json()["data"]]


@pytest.mark.parametrize(("question", "doc"), QUESTIONS)
def test_retrieval_finds_the_document(gateway_url: str, api_key: str, corpus: str, question: str,
                                      doc: str) -> None:
    for mode in ("dense", "hybrid"):
        hits = query(gateway_url, api_key, corpus, question, mode=mode)
        assert hits[0]["document_id"] == doc, (mode, hits)


def test_chat_cites_and_sends_the_passages_not_the_rag_field(gateway_url: str, api_key: str,
                                                             corpus: str) -> None:
    r = chat(gateway_url, api_key, {"model": "mock-dump", "rag": {"kb": corpus, "top_k": 3},
                                    "messages": [{"role": "user", "content": QUESTIONS[1][0]}]})
    assert r.status_code == 200, r.text
    rag = r.json()["rag"]
    assert rag["kb"] == corpus and rag["context"] == "retrieved"
    first = rag["citations"][0]
    assert first["document_id"] == "security.html" and first["index"] == 1
    assert first["title"] == "Security rules" and first["heading"] == "Badges"
    assert set(first) == {"index", "document_id", "title", "chunk", "heading", "score", "text"}
    upstream = orjson.loads(r.json()["choices"][0]["message"]["content"])
    assert "rag" not in upstream
    system = upstream["messages"][0]
    assert system["role"] == "system" and "extension 4242" in system["content"]
    assert "[1] Security rules — Badges" in system["content"]


def test_stream_carries_citations_on_the_first_chunk(gateway_url: str, api_key: str,
                                                     corpus: str) -> None:
    with httpx.stream("POST", f"{gateway_url}/v1/chat/completions", headers=auth(api_key),
                      timeout=60, json={"model": "mock", "stream": True, "max_tokens": 3,
                                        "rag": {"kb": corpus},
                                        "messages": [{"role": "user",
                                                      "content": QUESTIONS[0][0]}]}) as r:
        assert r.status_code == 200
        events = [ln[6:] for ln in r.iter_lines() if ln.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert chunks[0]["rag"]["citations"][0]["document_id"] == "handbook.md"
    assert not any("rag" in c for c in chunks[1:])
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "tok " * 3  # the output guardrail may merge chunks: nothing is lost


@pytest.mark.slow
def test_real_model_answers_with_citations(gateway_url: str, api_key: str, corpus: str) -> None:
    body = {"model": "smollm2-135m", "max_tokens": 24, "temperature": 0, "rag": {"kb": corpus},
            "messages": [{"role": "user", "content": QUESTIONS[2][0]}]}
    r = chat(gateway_url, api_key, body)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"]
    assert r.json()["rag"]["citations"][0]["document_id"] == "onboarding.pdf"
    with httpx.stream("POST", f"{gateway_url}/v1/chat/completions", headers=auth(api_key),
                      timeout=120, json={**body, "stream": True}) as s:
        events = [ln[6:] for ln in s.iter_lines() if ln.startswith("data: ")]
    first = orjson.loads(events[0])
    assert first["rag"]["citations"][0]["document_id"] == "onboarding.pdf"
    assert events[-1] == "[DONE]"


def test_reingest_unchanged_changed_and_delete(gateway_url: str, api_key: str) -> None:
    kb, v1 = "reingest", b"# Parking\nThe garage opens at 7 am. Bikes go to level minus one.\n"
    r = upload(gateway_url, api_key, kb, "parking.md", v1, document_id="parking")
    assert (r.status_code, r.json()["status"]) == (201, "created")
    r = upload(gateway_url, api_key, kb, "parking.md", v1, document_id="parking")
    assert (r.status_code, r.json()["status"]) == (200, "unchanged")
    v2 = b"# Parking\nThe garage opens at 9 am. Electric cars charge on level two.\n"
    r = upload(gateway_url, api_key, kb, "parking.md", v2, document_id="parking")
    assert (r.status_code, r.json()["status"]) == (201, "replaced")
    hits = query(gateway_url, api_key, kb, "When does the garage open?", min_score=-1)
    assert [h["text"] for h in hits] == ["The garage opens at 9 am. Electric cars charge on level two."]
    r = httpx.delete(f"{gateway_url}/v1/rag/kbs/{kb}/documents/parking", headers=auth(api_key))
    assert r.status_code == 200 and r.json()["chunks"] == 1
    assert query(gateway_url, api_key, kb, "When does the garage open?", min_score=-1) == []
    r = httpx.delete(f"{gateway_url}/v1/rag/kbs/{kb}/documents/parking", headers=auth(api_key))
    assert r.status_code == 404


def test_delete_a_knowledge_base(gateway_url: str, api_key: str) -> None:
    for name in ("a.txt", "b.txt"):
        assert upload(gateway_url, api_key, "scratch", name, b"Some text " + name.encode()
                      ).status_code == 201
    r = httpx.delete(f"{gateway_url}/v1/rag/kbs/scratch", headers=auth(api_key))
    assert r.status_code == 200 and r.json()["chunks"] == 2
    assert documents(gateway_url, api_key, "scratch") == []
    assert httpx.delete(f"{gateway_url}/v1/rag/kbs/scratch", headers=auth(api_key)).status_code == 404


def test_empty_knowledge_base_answers_without_context_and_says_so(gateway_url: str,
                                                                  api_key: str) -> None:
    r = chat(gateway_url, api_key, {"model": "mock-dump", "rag": {"kb": "nothing-here"},
                                    "messages": [{"role": "user", "content": "Anything?"}]})
    assert r.status_code == 200, r.text
    rag = r.json()["rag"]
    assert rag["context"] == "none" and rag["citations"] == []
    assert "has no documents" in rag["note"]
    upstream = orjson.loads(r.json()["choices"][0]["message"]["content"])
    assert "no passage" in upstream["messages"][0]["content"]


def test_nothing_relevant_says_so(gateway_url: str, api_key: str, corpus: str) -> None:
    r = chat(gateway_url, api_key, {"model": "mock", "max_tokens": 2,
                                    "rag": {"kb": corpus, "min_score": 0.99},
                                    "messages": [{"role": "user", "content": "Quantum chromodynamics?"}]})
    assert r.json()["rag"]["context"] == "none"
    assert "relevant enough" in r.json()["rag"]["note"]


def test_tenants_never_see_each_other(gateway_url: str, api_key: str, other_api_key: str,
                                      corpus: str) -> None:
    assert query(gateway_url, other_api_key, corpus, QUESTIONS[0][0], min_score=-1) == []
    assert documents(gateway_url, other_api_key, corpus) == []
    kbs = httpx.get(f"{gateway_url}/v1/rag/kbs", headers=auth(other_api_key)).json()["data"]
    assert corpus not in [k["id"] for k in kbs]
    r = httpx.delete(f"{gateway_url}/v1/rag/kbs/{corpus}/documents/handbook.md",
                     headers=auth(other_api_key))
    assert r.status_code == 404
    r = chat(gateway_url, other_api_key, {"model": "mock", "max_tokens": 2, "rag": {"kb": corpus},
                                          "messages": [{"role": "user", "content": QUESTIONS[0][0]}]})
    assert r.json()["rag"]["context"] == "none"
    # the same knowledge base name in another tenant is another knowledge base
    assert upload(gateway_url, other_api_key, corpus, "handbook.md", b"Other tenant's handbook."
                  ).status_code == 201
    assert documents(gateway_url, api_key, corpus) == sorted(CORPUS)
    hits = query(gateway_url, api_key, corpus, QUESTIONS[0][0])
    assert all("Other tenant" not in h["text"] for h in hits)
    httpx.delete(f"{gateway_url}/v1/rag/kbs/{corpus}", headers=auth(other_api_key))
    assert documents(gateway_url, api_key, corpus) == sorted(CORPUS)


@pytest.mark.parametrize(("name", "data", "media_type", "status", "code"), [
    ("sheet.xlsx", b"PK\x03\x04", "application/octet-stream", 400, "unsupported_file_type"),
    ("broken.pdf", b"%PDF-1.4\n1 0 obj garbage", "application/pdf", 422, "unreadable_document"),
    ("latin.txt", "caf\u00e9".encode("latin-1"), "text/plain", 422, "unreadable_document"),
    ("big.txt", b"x " * 140_000, "text/plain", 413, "request_too_large"),
])
def test_bad_uploads_write_nothing(gateway_url: str, api_key: str, name: str, data: bytes,
                                   media_type: str, status: int, code: str) -> None:
    r = upload(gateway_url, api_key, "failures", name, data, media_type)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert documents(gateway_url, api_key, "failures") == []


@pytest.mark.parametrize(("body", "param"), [
    ({"rag": {"kb": "x", "unknown": 1}}, "rag.unknown"),
    ({"rag": {"kb": "../etc"}}, "rag.kb"),
    ({"rag": {"kb": "x", "top_k": 0}}, "rag.top_k"),
])
def test_bad_rag_options_are_400(gateway_url: str, api_key: str, body: dict[str, Any],
                                 param: str) -> None:
    r = chat(gateway_url, api_key, {"model": "mock", "messages": [{"role": "user", "content": "q"}],
                                    **body})
    assert r.status_code == 400 and r.json()["error"]["param"] == param


def poll(url: str, key: str, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        job: dict[str, Any] = httpx.get(f"{url}/v1/rag/jobs/{job_id}", headers=auth(key)).json()
        if job["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def test_large_uploads_go_to_the_worker(gateway_url: str, api_key: str, other_api_key: str) -> None:
    text = "\n\n".join(f"## Topic {i}\nParagraph {i} explains rule number {i} of the archive. "
                       "It is long enough to make the upload pass the synchronous limit." * 2
                       for i in range(120)).encode()
    assert len(text) > 16 * 1024
    r = upload(gateway_url, api_key, "archive", "archive.md", text, "text/markdown")
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] in ("queued", "running") and r.headers["location"] == f"/v1/rag/jobs/{job['id']}"
    assert httpx.get(f"{gateway_url}/v1/rag/jobs/{job['id']}",
                     headers=auth(other_api_key)).status_code == 404
    done = poll(gateway_url, api_key, job["id"])
    assert done["status"] == "succeeded" and done["result"]["chunks"] > 10
    assert documents(gateway_url, api_key, "archive") == ["archive.md"]
    r = upload(gateway_url, api_key, "archive", "broken.pdf", b"%PDF-1.4 broken", "application/pdf",
               **{"async": "true"})
    failed = poll(gateway_url, api_key, r.json()["id"])
    assert failed["status"] == "failed" and failed["error"]["code"] == "unreadable_document"
    assert documents(gateway_url, api_key, "archive") == ["archive.md"]


@pytest.fixture(scope="module")
def no_qdrant_url(gateway_settings: GatewaySettings, dead_url: str) -> Iterator[str]:
    gw = Gateway(gateway_settings, rag_settings=RagSettings(qdrant_url=dead_url, qdrant_timeout_s=1))
    with serve_asgi(create_app(gw)) as url:
        yield url


def test_qdrant_down_fails_rag_requests_only(no_qdrant_url: str, api_key: str) -> None:
    msg = [{"role": "user", "content": "hi"}]
    r = chat(no_qdrant_url, api_key, {"model": "mock", "messages": msg, "rag": {"kb": KB}})
    assert r.status_code == 503 and r.json()["error"]["code"] == "rag_unavailable"
    assert chat(no_qdrant_url, api_key, {"model": "mock", "messages": msg,
                                         "max_tokens": 2}).status_code == 200
    r = upload(no_qdrant_url, api_key, KB, "a.txt", b"text")
    assert r.status_code == 503 and r.json()["error"]["code"] == "rag_unavailable"
