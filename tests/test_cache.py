from __future__ import annotations


from lsp_server.cache import CompletionCache

PREFIX = "def greet(name):\n    return "
SUFFIX = "\n\nprint(greet('世界😀'))\n"


def test_exact_hit_and_miss_counters() -> None:
    cache = CompletionCache()
    assert cache.lookup(PREFIX, SUFFIX) is None
    cache.put(PREFIX, SUFFIX, 'f"Hello, {name}!"')
    assert cache.lookup(PREFIX, SUFFIX) == 'f"Hello, {name}!"'
    assert cache.lookup(PREFIX, SUFFIX + "x") is None
    assert (cache.hits, cache.misses) == (1, 2)
    assert cache.hit_rate == 1 / 3
    assert cache.stats() == {"entries": 1, "hits": 1, "misses": 2, "hit_rate": 1 / 3}


def test_hit_rate_empty() -> None:
    assert CompletionCache().hit_rate == 0.0


def test_type_through() -> None:
    cache = CompletionCache()
    cache.put(PREFIX, SUFFIX, 'f"Hello, {name}!"')
    assert cache.lookup(PREFIX + "f", SUFFIX) == '"Hello, {name}!"'
    assert cache.lookup(PREFIX + 'f"Hello, ', SUFFIX) == '{name}!"'
    assert cache.lookup(PREFIX + 'f"Hello, {name}!', SUFFIX) == '"'


def test_type_through_rejections() -> None:
    cache = CompletionCache()
    cache.put(PREFIX, SUFFIX, "name.upper()")
    assert cache.lookup(PREFIX + "x", SUFFIX) is None  # typed something else
    assert cache.lookup(PREFIX + "name.upper()", SUFFIX) is None  # nothing left over
    assert cache.lookup(PREFIX + "na", SUFFIX + "#") is None  # suffix changed
    assert cache.lookup(PREFIX[:-1], SUFFIX) is None  # backspace: not a type-through
    assert cache.lookup("X" + PREFIX[1:] + "na", SUFFIX) is None  # earlier text differs
    # ... also where it differs further up than the short tail compared first (another import at the top).
    above = "import os\n" + "x = 1\n" * 20
    cache.put(above + PREFIX, SUFFIX, "name.upper()")
    assert cache.lookup(above.replace("os", "re") + PREFIX + "na", SUFFIX) is None
    assert cache.lookup(above + PREFIX + "na", SUFFIX) == "me.upper()"
    assert cache.hits == 1


def test_type_through_multiline_with_emoji() -> None:
    cache = CompletionCache()
    completion = "\n    emoji = '😀'\n    return f'{emoji} {name}'"
    cache.put("def f(name):", "\n", completion)
    assert cache.lookup("def f(name):\n    emoji = '😀", "\n") == "'\n    return f'{emoji} {name}'"


def test_newest_entry_wins_type_through() -> None:
    cache = CompletionCache()
    cache.put("x = ", "", "foo(1)")
    cache.put("x = ", "\n", "bar")  # different suffix
    cache.put("x = f", "", "oo(2)")
    # Both "x = " + "fo" -> "o(1)" and "x = f" + "o" -> "o(2)" match; newest first.
    assert cache.lookup("x = fo", "") == "o(2)"


def test_lru_eviction_and_refresh() -> None:
    cache = CompletionCache(capacity=2)
    cache.put("a", "", "1")
    cache.put("b", "", "2")
    assert cache.lookup("a", "") == "1"  # refreshes "a"
    cache.put("c", "", "3")  # evicts "b"
    assert len(cache) == 2
    assert cache.lookup("b", "") is None
    assert cache.lookup("a", "") == "1"
    assert cache.lookup("c", "") == "3"
    cache.put("a", "", "updated")
    assert cache.lookup("a", "") == "updated"
    assert len(cache) == 2


def test_type_through_refreshes_entry() -> None:
    cache = CompletionCache(capacity=2)
    cache.put("a", "", "bcd")
    cache.put("x", "", "yz")
    assert cache.lookup("ab", "") == "cd"  # touches "a"
    cache.put("q", "", "r")  # evicts "x", not "a"
    assert cache.lookup("x", "") is None
    assert cache.lookup("a", "") == "bcd"


def test_empty_completion_is_a_negative_hit() -> None:
    cache = CompletionCache()
    cache.put("x = 1", "\n", "")
    assert cache.lookup("x = 1", "\n") == ""
    assert cache.lookup("x = 1;", "\n") is None


def test_clear_keeps_counters() -> None:
    cache = CompletionCache()
    cache.put("a", "", "b")
    cache.lookup("a", "")
    cache.clear()
    assert len(cache) == 0
    assert cache.lookup("a", "") is None
    assert (cache.hits, cache.misses) == (1, 1)


class _CountingPrefix(str):
    """A document prefix that counts the full-length comparisons made against it."""

    full_compares = 0

    def startswith(self, other, *args) -> bool:  # type: ignore[override]
        _CountingPrefix.full_compares += 1
        return super().startswith(other, *args)


def test_large_documents_are_not_compared_whole_against_every_entry() -> None:
    # 128 entries over a ~100 KB document: the cheap filters (lengths, the suffix's hash, a short tail)
    # must leave at most the one matching entry for a full comparison.
    doc = "".join(f"line_{i} = compute({i}, 'ü')\n" for i in range(4000))
    cache = CompletionCache()
    for i in range(128):
        cut = 50_000 + i * 40
        cache.put(doc[:cut], doc[cut:], "value")
    cut = 50_000 + 127 * 40
    _CountingPrefix.full_compares = 0
    for _ in range(50):
        assert cache.lookup(_CountingPrefix(doc[:cut] + "va"), doc[cut:]) == "lue"
        assert cache.lookup(_CountingPrefix(doc[:cut] + "zz"), doc[cut:]) is None
    assert _CountingPrefix.full_compares <= 50


def test_the_characters_held_are_bounded_in_big_documents() -> None:
    # Before: 128 entries each held a whole document; typing in a 3 MB file grew the server by 350 MB.
    cache = CompletionCache(capacity=128, max_chars=10_000)
    body = "x = 1\n" * 500  # 3,000 characters before the cursor
    for typed in range(20):
        cache.put(body + "y" * typed, "\n", "z")
    assert len(cache) == 3 and cache.lookup(body + "y" * 19, "\n") == "z"
    assert cache.lookup(body, "\n") is None  # the oldest went first
    cache.put("a" * 50_000, "", "b")  # larger than the bound alone: kept, the rest evicted
    assert len(cache) == 1 and cache.lookup("a" * 50_000, "") == "b"
    cache.put("a" * 50_000, "", "c")  # a refreshed entry counts once
    cache.put("small", "", "d")
    assert len(cache) == 1 and cache.lookup("small", "") == "d"


def test_find_tells_the_same_cursor_from_type_through() -> None:
    # At the cursor it was made at, a completion comes back with what it replaced right of the cursor (it is
    # served as it was shown); typed into, its rest comes without, to be shaped anew at the new cursor.
    cache = CompletionCache()
    cache.put("print(", ")\n", "x)", replace_chars=1)
    found = cache.find("print(", ")\n")
    assert found is not None and (found.completion, found.replace_chars) == ("x)", 1)
    found = cache.find("print(x", ")\n")
    assert found is not None and (found.completion, found.replace_chars) == (")", None)
    assert cache.find("print(y", ")\n") is None
