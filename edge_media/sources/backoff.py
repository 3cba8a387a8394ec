"""Exponential backoff with full jitter for reconnect loops."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delay before the next attempt: ``uniform(initial, min(cap, initial * factor**n))``.

    Full jitter spreads reconnects of many cameras behind one flaky switch, and the floor at
    ``initial`` guarantees that a dead camera can never be polled in a busy loop.
    """

    initial_s: float = 1.0
    cap_s: float = 30.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.initial_s * self.factor**self.attempts)
        self.attempts += 1
        return self.rng.uniform(self.initial_s, max(self.initial_s, ceiling))

    def reset(self) -> None:
        self.attempts = 0
