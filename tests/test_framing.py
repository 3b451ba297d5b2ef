"""The framer on its own: any chunking of the stream, wrong lengths and garbage between messages."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from lsp_server.framing import Framer, frame

# Bodies as clients write them: JSON objects, whose strings may spell anything, headers included.
pieces = st.lists(st.sampled_from(["a", "é", "😀", "\r\n", ":", " ", "Content-Length: 12\r\n"]), max_size=12)
bodies = st.builds(lambda i, s: json.dumps({"jsonrpc": "2.0", "id": i, "text": "".join(s)},
                                           ensure_ascii=False).encode(), st.integers(0, 10**6), pieces)
# Garbage that cannot itself be a header (a header in the stream is a message, by definition).
garbage = st.binary(max_size=40).filter(lambda b: b"ontent-" not in b.lower())


def feed_in_chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    framer, out, start = Framer(), [], 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}) + [len(data)]:
        out += framer.feed(data[start:cut])
        start = cut
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(bodies, min_size=1, max_size=6), st.lists(st.integers(0, 10**6), max_size=12))
def test_well_framed_messages_in_any_chunks(messages: list[bytes], cuts: list[int]) -> None:
    data = b"".join(frame(m) for m in messages)
    assert feed_in_chunks(data, cuts) == messages


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(bodies, st.integers(-30, 60), garbage), min_size=1, max_size=6),
       bodies, st.lists(st.integers(0, 10**6), max_size=12))
def test_every_well_framed_message_survives_broken_neighbours(broken: list[tuple[bytes, int, bytes]], last: bytes,
                                                              cuts: list[int]) -> None:
    """A message with a wrong Content-Length (too short or too long) or garbage before the next header
    costs at most that message: the next well-framed one is still read, whole."""
    data, intact = b"", []
    for body, error, junk in broken:
        length = max(0, len(body) + error)
        data += b"Content-Length: %d\r\n\r\n%s%s" % (length, body, junk)
        if error == 0 and not junk:
            intact.append(body)
    data += frame(last)
    out = feed_in_chunks(data, cuts)
    assert out[-1] == last
    found = iter(out)
    assert all(any(body == o for o in found) for body in intact)  # in order, each whole
    assert len(out) <= len(broken) + 1  # nothing is read twice


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(bodies, st.sampled_from([b"\r\n", b"\n"]), st.sampled_from([b"\r\n", b"\n"]),
                          st.booleans()), min_size=1, max_size=6),
       st.lists(st.integers(0, 10**6), max_size=12))
def test_header_lines_may_end_with_lf_alone(messages: list[tuple[bytes, bytes, bytes, bool]], cuts: list[int]) -> None:
    """A client that ends its header lines with LF alone (as printf does) was skipped as garbage: never answered."""
    data = b"".join(b"Content-Length: %d%s%s%s" % (len(body), end, b"Content-Type: x" + end if typed else b"", blank)
                    + body for body, end, blank, typed in messages)
    assert feed_in_chunks(data, cuts) == [body for body, *_ in messages]


def test_a_too_long_length_is_cut_at_the_next_header() -> None:
    a, b = b'{"id": 1}', b'{"id": 2}'
    assert Framer().feed(b"Content-Length: 50\r\n\r\n" + a + frame(b)) == [a, b]
    assert Framer().feed(b"Content-Length: 50\n\n" + a + b"Content-Length: 9\n\n" + b) == [a, b]


def test_other_header_fields_and_case() -> None:
    a = b'{"id": 1}'
    data = b"content-length: 9\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n" + a
    assert Framer().feed(data) == [a]
    assert Framer().feed(b"Content-Type: x\r\nContent-Length: 9\r\n\r\n" + a) == [a]


def test_an_oversized_message_is_skipped() -> None:
    a = b'{"id": 1}'
    framer = Framer(max_body=100)
    assert framer.feed(b"Content-Length: 101\r\n\r\n" + b"x" * 101 + frame(a)) == [a]
