"""Cursor pages of the API's read model, as pure functions: walking the pages gives every item once, in order,
whatever the page size, the ties in time, and the items inserted between two reads."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_media.api.clipview import BadCursor, EventItem, _after, _neg, _page, decode_cursor, encode_cursor

times = st.sampled_from([1.0, 2.0, 2.5, 3.0, 10.0])  # few distinct times: many ties
ids = st.text(alphabet="0123456789abcdef", min_size=1, max_size=6)


def _event(at: float, eid: str) -> EventItem:
    return EventItem(eid, f"clip-{eid}", "porch", "motion", 0.5, at, at + 1)


def _sorted(items: list[EventItem]) -> tuple[list[EventItem], list[tuple[float, str]]]:
    items = sorted(items, key=lambda e: e.sort_key, reverse=True)
    return items, [_neg(e.sort_key) for e in items]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(times, ids), unique_by=lambda t: t[1], max_size=30),
       st.lists(st.tuples(times, ids), unique_by=lambda t: t[1], max_size=10), st.integers(1, 7))
def test_pages_give_every_item_once_in_order_despite_inserts(first, later, limit):
    items, keys = _sorted([_event(*t) for t in first])
    seen: list[EventItem] = []
    cursor, inserted = None, False
    while True:
        start = _after(keys, decode_cursor("events", cursor)) if cursor else 0
        page = _page(items, start, len(items), lambda e: True, limit, "events", lambda e: e.sort_key)
        seen += page.items
        if not inserted:  # new items arrive after the first page was read
            fresh = [_event(at, f"n{eid}") for at, eid in later]
            items, keys = _sorted(items + fresh)
            inserted = True
        cursor = page.next_cursor
        if cursor is None:
            break
    keys_seen = [e.sort_key for e in seen]
    assert len(keys_seen) == len(set(keys_seen))  # nothing twice
    assert keys_seen == sorted(keys_seen, reverse=True)  # newest first
    assert {(e.start, e.event_id) for e in _sorted([_event(*t) for t in first])[0]} <= {
        (e.start, e.event_id) for e in seen}  # nothing that was there is skipped


def test_a_cursor_of_another_listing_or_garbage_is_refused():
    good = encode_cursor("clips", (1.0, "x"))
    assert decode_cursor("clips", good) == (1.0, "x")
    for bad in (good, "", "!!!", encode_cursor("events", (1.0, "x"))[:-2]):
        try:
            decode_cursor("events", bad)
        except BadCursor as exc:
            assert "cursor" in str(exc)
        else:
            raise AssertionError(f"accepted {bad!r}")
