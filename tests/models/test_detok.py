from __future__ import annotations

from alignlab.models.detok import TextStream


def stream_of(pieces: list[str], stop: tuple[str, ...] = ()) -> tuple[list[str], TextStream]:
    vocab = {i: p for i, p in enumerate(pieces)}
    stream = TextStream(lambda ids: "".join(vocab[i] for i in ids), stop)
    return [stream.push(i) for i in range(len(pieces))], stream


def test_text_is_released_as_it_comes() -> None:
    deltas, stream = stream_of(["Hel", "lo", " world"])
    assert deltas == ["Hel", "lo", " world"]
    assert stream.flush() == ""


def test_a_possible_stop_string_is_held_back_then_released() -> None:
    deltas, stream = stream_of(["a", " ST", "x"], stop=("STOP",))
    assert deltas == ["a", " ", "STx"]
    assert not stream.stopped


def test_the_stop_string_and_what_follows_are_never_released() -> None:
    deltas, stream = stream_of(["a", " ST", "OP", " more"], stop=("STOP",))
    assert "".join(deltas) == "a "
    assert stream.stopped and stream.flush() == ""


def test_incomplete_characters_wait_for_their_bytes() -> None:
    deltas, stream = stream_of(["caf", "\ufffd", "é!"])
    assert deltas[1] == ""
    assert "".join(deltas) + stream.flush() == "caf\ufffdé!"
