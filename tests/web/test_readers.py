"""Index instances lent to one request at a time."""

from __future__ import annotations

import threading
from pathlib import Path

from saescope.index import Index
from saescope.web.readers import IndexReaders


def test_instances_are_lent_to_one_borrower_at_a_time(run: Path) -> None:
    primary = Index(run / "index")
    readers = IndexReaders(primary, 2)
    with readers.borrow() as a, readers.borrow() as b:
        assert a is not b and {a, b} >= {primary} and a.tokenizer is b.tokenizer
        got: list[Index] = []

        def third() -> None:
            with readers.borrow() as c:
                got.append(c)

        waiter = threading.Thread(target=third)
        waiter.start()
        waiter.join(0.2)
        assert waiter.is_alive()  # every instance is lent: a third borrower waits
    waiter.join(5)
    assert got and got[0] in (a, b)
    assert a.top_examples(3, 5) == b.top_examples(3, 5)  # the same index, either way
