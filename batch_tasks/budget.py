"""The batch's budget (`budget_usd:`): once it is spent, no new item starts; running ones finish."""

from __future__ import annotations

import threading


class Budget:
    def __init__(self, limit_usd: float | None, spent_usd: float = 0.0):
        self.limit = limit_usd
        self.spent = spent_usd  # by the results already recorded, then by this run's attempts
        self.refused = 0  # items not started because it was spent
        self._lock = threading.Lock()

    def spend(self, amount_usd: float | None) -> None:
        if amount_usd:
            with self._lock:
                self.spent += amount_usd

    def refusal(self) -> str | None:
        """Why no new item may start, or None while one may."""
        with self._lock:
            if self.limit is None or self.spent < self.limit:
                return None
            self.refused += 1
            return f"the batch's budget of ${self.limit:.2f} is spent"

    def note(self) -> str:
        if self.limit is None:
            return ""
        if self.refused:
            return f"budget: ${self.spent:.2f} of ${self.limit:.2f} spent; no new items were started after that"
        return f"budget: ${self.spent:.2f} of ${self.limit:.2f} spent"
