"""``llmp models``: publish GGUF files to Blob Storage, list aliases, roll back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from llmp_cli.local import blob_settings
from models.blob_store import ModelStore, ModelVersion
from models.local_files import resolve_model_file

app = typer.Typer(no_args_is_help=True, help="Publish, list and roll back GGUF models in Blob Storage.")


async def publish_file(store: ModelStore, alias: str, path: Path, *, in_place: bool = False,
                       n_ctx: int | None = None, chat_template: str | None = None,
                       show_progress: bool = False) -> ModelVersion:
    size = (await asyncio.to_thread(path.stat)).st_size
    if not show_progress:
        return await store.publish(alias, path, in_place=in_place, n_ctx=n_ctx,
                                   chat_template=chat_template)
    with typer.progressbar(length=size, label=f"uploading {path.name}") as bar:
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            bar.update(n - done)
            done = n

        return await store.publish(alias, path, in_place=in_place, n_ctx=n_ctx,
                                   chat_template=chat_template, progress=progress)


@app.command("publish")
def publish(
    file: Annotated[str, typer.Argument(help="A GGUF path, or package:DIST for one shipped on PyPI.")],
    alias: Annotated[str, typer.Option(help="The catalog alias this file serves.")],
    in_place: Annotated[bool, typer.Option(
        help="Overwrite <alias>/model.gguf instead of a new immutable version.")] = False,
    n_ctx: Annotated[int | None, typer.Option(help="llama.cpp context length to load with.")] = None,
    chat_template: Annotated[Path | None, typer.Option(
        help="A Jinja chat template file overriding the GGUF's own.")] = None,
) -> None:
    """Upload a model (SHA-256 computed and stored) and point the alias at it."""
    path = resolve_model_file(file)
    template = chat_template.read_text() if chat_template else None

    async def run() -> ModelVersion:
        store = ModelStore.from_settings(blob_settings())
        try:
            return await publish_file(store, alias, path, in_place=in_place, n_ctx=n_ctx,
                                      chat_template=template, show_progress=True)
        finally:
            await store.aclose()

    mv = asyncio.run(run())
    typer.echo(f"published {alias} version {mv.version} (sha256 {mv.sha256}, {mv.size} bytes)")


@app.command("list")
def list_models() -> None:
    """Aliases, the version each points at, and earlier versions (for rollback)."""

    async def run() -> list[tuple[str, ModelVersion | None, int]]:
        store = ModelStore.from_settings(blob_settings())
        try:
            out = []
            for alias in await store.aliases():
                m = await store.manifest(alias)
                out.append((alias, await store.current(alias), len(m.history) if m else 0))
            return out
        finally:
            await store.aclose()

    for alias, mv, older in asyncio.run(run()):
        if mv is None:
            typer.echo(f"{alias:<24} (nothing published)")
            continue
        way = "in place" if mv.blob.endswith("/model.gguf") else "versioned"
        typer.echo(f"{alias:<24} {mv.version:<40} {way:<9} {mv.size:>12} bytes  "
                   f"sha256 {(mv.sha256 or '?')[:12]}…  {older} earlier")


@app.command("rollback")
def rollback(alias: Annotated[str, typer.Argument(help="The alias to roll back.")]) -> None:
    """Point the alias back at its previous version."""

    async def run() -> ModelVersion:
        store = ModelStore.from_settings(blob_settings())
        try:
            return await store.rollback(alias)
        finally:
            await store.aclose()

    try:
        mv = asyncio.run(run())
    except LookupError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{alias} now points at {mv.version}")
