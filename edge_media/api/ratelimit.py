"""Failed authentications per client address, over a sliding minute: past the limit, the address gets 429.

Only failures count (a wrong or revoked token, a bad link signature), so a household's apps polling with good
tokens are never limited. Behind a reverse proxy every client shares the proxy's address: the limit then
protects the hub as a whole, which is the safe side.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

WINDOW_S = 60.0
MAX_ADDRESSES = 10_000  # bounded memory under a spray of addresses: the oldest are forgotten first


class FailureLimiter:
    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute, self.clock = per_minute, clock
        self._fails: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def blocked(self, address: str) -> bool:
        with self._lock:
            recent = self._recent(address)
            return recent is not None and len(recent) >= self.per_minute

    def fail(self, address: str) -> None:
        with self._lock:
            recent = self._recent(address)
            if recent is None:
                recent = self._fails[address] = deque()
            recent.append(self.clock())
            self._fails.move_to_end(address)
            while len(self._fails) > MAX_ADDRESSES:
                self._fails.popitem(last=False)

    def retry_after(self, address: str) -> int:
        with self._lock:
            recent = self._recent(address)
            return 1 if not recent else max(1, int(recent[0] + WINDOW_S - self.clock()) + 1)

    def _recent(self, address: str) -> deque[float] | None:
        recent = self._fails.get(address)
        if recent is None:
            return None
        horizon = self.clock() - WINDOW_S
        while recent and recent[0] <= horizon:
            recent.popleft()
        if not recent:
            del self._fails[address]
            return None
        return recent
