"""The embedding server's HTTP API: ``POST /v1/embeddings`` (OpenAI's), ``POST /tokenize`` (token
counts, for RAG chunking in the gateway), ``GET /v1/models``, ``/health`` (503 while the model loads)
and ``/metrics``."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from models.embedding_server.engine import Batcher, Busy, Encoder, Vectors
from models.embedding_server.metrics import Metrics
from models.embedding_server.protocol import EmbeddingRequest
from models.embedding_server.settings import EmbeddingServerSettings
from models.local_files import resolve_model_dir

log = logging.getLogger(__name__)

EncoderFactory = Callable[[EmbeddingServerSettings], Encoder]


class RequestError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = None
    input: list[str] = Field(max_length=100_000)


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                    media_type="application/json")


def _error(e: RequestError) -> Response:
    type_ = "invalid_request_error" if e.status < 500 else "server_error"
    return _json({"error": {"message": e.message, "type": type_, "param": e.param, "code": e.code}},
                 e.status)


def default_encoder(s: EmbeddingServerSettings) -> Encoder:
    return Encoder(resolve_model_dir(s.model), s.batch_size, s.threads)


class EmbeddingServer:
    def __init__(self, settings: EmbeddingServerSettings,
                 encoder_factory: EncoderFactory = default_encoder) -> None:
        self.settings = settings
        self._factory = encoder_factory
        self.encoder: Encoder | None = None
        self.batcher: Batcher | None = None
        self.load_error: str | None = None
        self.load_seconds: float | None = None
        self._tokenize_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize")
        self.metrics = Metrics(lambda: self.batcher.in_flight if self.batcher else 0)

    # -- life -----------------------------------------------------------------------------------
    async def load(self) -> None:
        started = time.monotonic()
        try:
            encoder = await asyncio.to_thread(self._factory, self.settings)
        except Exception as e:  # noqa: BLE001 - /health says why; the pod is restarted by its probe
            self.load_error = f"{type(e).__name__}: {e}"
            log.error("embedding model failed to load", extra={"model": self.settings.model,
                                                               "error": self.load_error})
            return
        self.batcher = Batcher(encoder.encode, self.settings.max_batch_inputs,
                               self.settings.max_queue_inputs, self._model_call)
        self.batcher.start()
        self.encoder = encoder
        self.load_seconds = round(time.monotonic() - started, 3)
        log.info("embedding model loaded", extra={"model": self.settings.model,
                                                  "seconds": self.load_seconds})

    def _model_call(self, inputs: int) -> None:
        self.metrics.model_calls.inc()
        self.metrics.batch_inputs.observe(inputs)

    async def aclose(self) -> None:
        if self.batcher is not None:
            await self.batcher.aclose()
        self._tokenize_pool.shutdown(wait=False, cancel_futures=True)

    @property
    def max_tokens(self) -> int:
        assert self.encoder is not None
        return min(self.settings.max_input_tokens or self.encoder.max_tokens, self.encoder.max_tokens)

    # -- handlers -------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        s, enc = self.settings, self.encoder
        info = {"alias": s.alias, "model": s.model, "load_seconds": self.load_seconds,
                "last_error": self.load_error}
        if enc is None or self.batcher is None:
            status = "failed" if self.load_error else "loading"
            return _json({"status": status, **info}, 503)
        return _json({"status": "ok", "dimensions": enc.dim, "max_input_tokens": self.max_tokens,
                      "in_flight": self.batcher.in_flight, **info})

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4")

    async def models(self, request: Request) -> Response:
        enc = self.encoder
        return _json({"object": "list", "data": [
            {"id": self.settings.alias, "object": "model", "created": 0, "owned_by": "llmp",
             "dimensions": enc.dim if enc else None,
             "max_input_tokens": self.max_tokens if enc else None}]})

    async def embeddings(self, request: Request) -> Response:
        started = time.monotonic()
        try:
            body = await self._embeddings(request)
        except RequestError as e:
            self.metrics.requests.labels(str(e.status)).inc()
            return _error(e)
        self.metrics.requests.labels("200").inc()
        self.metrics.seconds.observe(time.monotonic() - started)
        return body

    async def tokenize(self, request: Request) -> Response:
        try:
            encoder = self._ready()
            req = _parse(TokenizeRequest, await request.body())
            ids = await self._tokenize(encoder, req.input)
        except RequestError as e:
            return _error(e)
        counts = [len(x) for x in ids]
        return _json({"counts": counts, "count": sum(counts), "max_input_tokens": self.max_tokens})

    # -- the work -------------------------------------------------------------------------------
    def _ready(self) -> Encoder:
        if self.encoder is None or self.batcher is None:
            raise RequestError(503, "The embedding model is loading.", code="model_loading")
        return self.encoder

    async def _tokenize(self, encoder: Encoder, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._tokenize_pool, encoder.tokenize, texts)

    async def _embeddings(self, request: Request) -> Response:
        encoder = self._ready()
        req = _parse(EmbeddingRequest, await request.body())
        s = self.settings
        if req.model != s.alias:
            raise RequestError(404, f"The model '{req.model}' does not exist (this server serves "
                               f"'{s.alias}').", param="model", code="model_not_found")
        dims = self._dimensions(encoder, req.dimensions)
        inputs = req.inputs()
        if len(inputs) > s.max_inputs:
            raise RequestError(400, f"Too many inputs: {len(inputs)}; at most {s.max_inputs} per "
                               "request.", param="input", code="too_many_inputs")
        if isinstance(inputs[0], str):
            ids = await self._tokenize(encoder, inputs)
        else:
            ids = inputs
            self._check_token_ids(encoder, ids)
        if req.truncate:
            ids = [seq[:self.max_tokens] for seq in ids]
        self._check_lengths(ids)
        assert self.batcher is not None
        try:
            vectors = await self.batcher.embed(ids)
        except Busy as e:
            raise RequestError(503, f"The embedding server is busy ({e}); retry.",
                               code="server_busy") from None
        tokens = sum(len(x) for x in ids)
        self.metrics.inputs.inc(len(ids))
        self.metrics.tokens.inc(tokens)
        return _json(self._body(vectors, dims, req.encoding_format, tokens))

    def _dimensions(self, encoder: Encoder, wanted: int | None) -> int:
        if wanted is None or wanted == encoder.dim:
            return encoder.dim
        if self.settings.matryoshka and wanted < encoder.dim:
            return wanted
        raise RequestError(400, f"This model does not support 'dimensions' other than its native "
                           f"{encoder.dim}.", param="dimensions", code="unsupported_parameter")

    def _check_token_ids(self, encoder: Encoder, ids: Sequence[Sequence[int]]) -> None:
        vocab = encoder.vocab_size
        for i, seq in enumerate(ids):
            if any(t < 0 or t >= vocab for t in seq):
                raise RequestError(400, f"Input {i} has token ids outside the model's vocabulary "
                                   f"(0 to {vocab - 1}).", param="input", code="invalid_value")

    def _check_lengths(self, ids: Sequence[Sequence[int]]) -> None:
        limit = self.max_tokens
        for i, seq in enumerate(ids):
            if len(seq) > limit:
                raise RequestError(400, f"Input {i} has {len(seq)} tokens; this model takes at most "
                                   f"{limit} per input.", param="input",
                                   code="context_length_exceeded")

    def _body(self, vectors: Vectors, dims: int, encoding: str, tokens: int) -> dict[str, Any]:
        import numpy as np

        if dims != vectors.shape[1]:
            vectors = vectors[:, :dims]
            vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        data: list[dict[str, Any]]
        if encoding == "base64":
            raw = vectors.astype("<f4")
            data = [{"object": "embedding", "index": i,
                     "embedding": base64.b64encode(raw[i].tobytes()).decode()}
                    for i in range(len(raw))]
        else:
            data = [{"object": "embedding", "index": i, "embedding": vectors[i]}
                    for i in range(len(vectors))]
        return {"object": "list", "data": data, "model": self.settings.alias,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _parse(model: type[Any], raw: bytes) -> Any:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RequestError(400, "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise RequestError(400, "The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        param = str(first["loc"][0]) if first["loc"] else None
        raise RequestError(400, f"Invalid value for '{param}': {first['msg']}.", param=param,
                           code="invalid_value") from None


def create_app(settings: EmbeddingServerSettings,
               encoder_factory: EncoderFactory = default_encoder) -> Starlette:
    server = EmbeddingServer(settings, encoder_factory)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(server.load())  # /health is 503 meanwhile
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await server.aclose()

    app = Starlette(routes=[
        Route("/health", server.health, methods=["GET"]),
        Route("/metrics", server.metrics_endpoint, methods=["GET"]),
        Route("/v1/models", server.models, methods=["GET"]),
        Route("/v1/embeddings", server.embeddings, methods=["POST"]),
        Route("/tokenize", server.tokenize, methods=["POST"]),
    ], lifespan=lifespan)
    app.state.server = server
    return app


def main() -> None:
    import os

    import uvicorn

    from models.logs import configure_logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never a model hub
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    settings = EmbeddingServerSettings()
    configure_logging(settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level="warning", access_log=False, timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
