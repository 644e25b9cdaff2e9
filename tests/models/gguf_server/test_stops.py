import pytest

from models.gguf_server.stops import StopMatcher


def run(stops: tuple[str, ...], pieces: list[str]) -> tuple[str, bool]:
    m = StopMatcher(stops)
    out = []
    for p in pieces:
        text, hit = m.feed(p)
        out.append(text)
        if hit:
            return "".join(out), True
    out.append(m.flush())
    return "".join(out), False


@pytest.mark.parametrize(("stops", "pieces", "expected"), [
    ((), ["a", "b"], ("ab", False)),
    (("END",), ["hello E", "N", "D more"], ("hello ", True)),
    (("END",), ["hello E", "N", "x"], ("hello ENx", False)),
    (("\n\n",), ["one\n", "\ntwo"], ("one", True)),
    (("ab", "b"), ["xb"], ("x", True)),
    (("stop",), ["st"], ("st", False)),
])
def test_stops(stops: tuple[str, ...], pieces: list[str], expected: tuple[str, bool]) -> None:
    assert run(stops, pieces) == expected


def test_text_that_cannot_start_a_stop_is_not_held() -> None:
    m = StopMatcher(("END",))
    assert m.feed("hello") == ("hello", False)
    assert m.feed(" E") == (" ", False)
