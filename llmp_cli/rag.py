"""``llmp rag``: bulk-ingest files into a knowledge base, list and delete, over the gateway's HTTP API.

A client of ``/v1/rag/...`` like any other, so it works against a local gateway and against Azure
alike: ``--base-url`` (``LLMP_BASE_URL``, default the local gateway) and ``--api-key``
(``LLMP_API_KEY``, default the local dev key that ``llmp serve`` keeps in ``.llmp/dev-api-key``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from llmp_cli.local import data_dir

app = typer.Typer(no_args_is_help=True, help="Ingest documents into knowledge bases and manage them.")

SUPPORTED = {".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf"}
MEDIA_TYPES = {".pdf": "application/pdf", ".html": "text/html", ".htm": "text/html",
               ".md": "text/markdown", ".markdown": "text/markdown"}

BaseUrl = Annotated[str, typer.Option("--base-url", envvar="LLMP_BASE_URL",
                                      help="The gateway (local or Azure).")]
ApiKey = Annotated[str | None, typer.Option("--api-key", envvar="LLMP_API_KEY",
                                            help="API key (default: the local dev key).")]
Kb = Annotated[str, typer.Option("--kb", help="Knowledge base name.")]
DEFAULT_URL = "http://127.0.0.1:7071"


def _client(base_url: str, api_key: str | None) -> httpx.Client:
    key = api_key
    if key is None:
        dev = data_dir() / "dev-api-key"
        if not dev.is_file():
            raise typer.BadParameter("no --api-key / LLMP_API_KEY, and no local dev key",
                                     param_hint="--api-key")
        key = dev.read_text().strip()
    return httpx.Client(base_url=base_url.rstrip("/"), headers={"authorization": f"Bearer {key}"},
                        timeout=httpx.Timeout(300, connect=10), trust_env=False)


def files_under(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for p in sorted(path.rglob("*")):
        if p.is_file() and p.suffix.lower() in SUPPORTED and not p.name.startswith("."):
            yield p


def _error(r: httpx.Response) -> str:
    try:
        return str(r.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {r.status_code}"


def _wait(client: httpx.Client, job: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        job = client.get(f"/v1/rag/jobs/{job['id']}").json()
    return job


def ingest_file(client: httpx.Client, kb: str, root: Path, path: Path, timeout_s: float
                ) -> tuple[str, str]:
    """(status, detail) of one file: created, replaced, unchanged or failed."""
    rel = path.relative_to(root) if path != root else Path(path.name)
    doc_id = "-".join(rel.parts)
    r = client.post(f"/v1/rag/kbs/{kb}/documents", content=path.read_bytes(),
                    params={"filename": path.name, "document_id": _safe(doc_id)},
                    headers={"content-type": MEDIA_TYPES.get(path.suffix.lower(), "text/plain")})
    if r.status_code == 202:
        job = _wait(client, r.json(), timeout_s)
        if job["status"] == "succeeded":
            return job["result"]["status"], f"{job['result']['chunks']} chunks"
        return "failed", (job.get("error") or {}).get("message") or f"job {job['status']}"
    if r.status_code in (200, 201):
        return r.json()["status"], f"{r.json()['chunks']} chunks"
    return "failed", _error(r)


def _safe(doc_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", doc_id).strip("-._")[:128] or "document"


@app.command("ingest")
def ingest(
    path: Annotated[Path, typer.Argument(exists=True, help="A file, or a folder (recursively).")],
    kb: Kb,
    base_url: BaseUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    job_timeout: Annotated[float, typer.Option(help="Seconds to wait for a queued job.")] = 600,
) -> None:
    """Upload text, Markdown, HTML and PDF files; unchanged files are skipped by the gateway,
    changed ones replace their old passages."""
    files = list(files_under(path))
    if not files:
        typer.echo("no supported files (.txt, .md, .html, .pdf)", err=True)
        raise typer.Exit(1)
    root = path if path.is_dir() else path.parent
    counts: dict[str, int] = {}
    failures: list[str] = []
    with _client(base_url, api_key) as client, typer.progressbar(
            files, label=f"ingesting into {kb}", item_show_func=lambda p: p.name if p else "",
            file=None) as bar:
        for f in bar:
            try:
                status, detail = ingest_file(client, kb, root, f, job_timeout)
            except httpx.HTTPError as e:
                status, detail = "failed", f"{type(e).__name__}: {e}"
            counts[status] = counts.get(status, 0) + 1
            if status == "failed":
                failures.append(f"{f}: {detail}")
    for line in failures:
        typer.echo(f"failed: {line}", err=True)
    typer.echo(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if failures:
        raise typer.Exit(1)


@app.command("list")
def list_(kb: Annotated[str | None, typer.Option("--kb", help="Documents of this kb.")] = None,
          base_url: BaseUrl = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """List knowledge bases, or the documents of one."""
    with _client(base_url, api_key) as client:
        r = client.get(f"/v1/rag/kbs/{kb}/documents" if kb else "/v1/rag/kbs")
        if r.status_code != 200:
            typer.echo(_error(r), err=True)
            raise typer.Exit(1)
        for d in r.json()["data"]:
            if kb:
                typer.echo(f"{d['document_id']:<40} {d['chunks']:>6} chunks  {d['title']}")
            else:
                typer.echo(f"{d['id']:<30} {d['documents']:>6} documents {d['chunks']:>8} chunks")


@app.command("delete")
def delete(kb: Kb, document: Annotated[str | None, typer.Option(
               help="One document id; without it the whole knowledge base.")] = None,
           base_url: BaseUrl = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """Delete a document, or a whole knowledge base."""
    with _client(base_url, api_key) as client:
        path = f"/v1/rag/kbs/{kb}" + (f"/documents/{document}" if document else "")
        r = client.delete(path)
        if r.status_code != 200:
            typer.echo(_error(r), err=True)
            raise typer.Exit(1)
        typer.echo(f"deleted {r.json()['chunks']} chunks")
