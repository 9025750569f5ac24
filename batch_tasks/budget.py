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
            return f"the batch's budget of {dollars(self.limit)} is spent"

    def note(self) -> str:
        if self.limit is None:
            return ""
        if self.refused:
            return f"budget: {dollars(self.spent)} of {dollars(self.limit)} spent; no new items were started after that"
        return f"budget: {dollars(self.spent)} of {dollars(self.limit)} spent"


def dollars(amount: float) -> str:
    """Cents, or finer for amounts under a cent (a budget of $0.005 is not $0.01)."""
    return f"${amount:.2f}" if amount >= 0.01 or amount == 0 else f"${amount:.4f}".rstrip("0")
