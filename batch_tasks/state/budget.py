"""The batch's budget (`budget_usd:`): what is spent, what running attempts have reserved,
and whether one more attempt fits. It is never overshot by what was known at a start:
an attempt starts only if spent + reserved + its own reservation stays within it.

An attempt's reservation is what it may cost: its `item_budget_usd` when set, else the
high end of its forecast, else its group's dearest attempt of this run (the dispatcher
says which); with none known, all that is left (it runs alone). The
reservation is released when the attempt ends, and its actual cost counted instead.
Plain data behind a lock: the dispatcher asks, the item's lifecycle spends.
"""

from __future__ import annotations

import threading


class Budget:
    def __init__(self, limit_usd: float | None, spent_usd: float = 0.0):
        self.limit = limit_usd
        self.spent = spent_usd  # by the results already recorded, then by this run's attempts
        self.refused = 0  # items not started for the budget
        self._reserved: dict[str, float] = {}  # running attempt's item → its reservation
        self.fallbacks: dict[str, tuple[str, str]] = {}  # item run on its fallback_model → (that model, why)
        self._lock = threading.Lock()

    def spend(self, amount_usd: float | None) -> None:
        if amount_usd:
            with self._lock:
                self.spent += amount_usd

    @property
    def reserved(self) -> float:
        with self._lock:
            return sum(self._reserved.values())

    def can_hold(self, amount_usd: float | None) -> bool:
        """Whether one more attempt that may cost `amount_usd` (None: unknown) fits now,
        beside what is spent and what the running attempts reserved."""
        with self._lock:
            return self._fits(amount_usd)

    def reserve(self, key: str, amount_usd: float | None) -> bool:
        """Reserve for an attempt of `key` if it fits (see `can_hold`); an unknown amount
        reserves all that is left, so nothing else starts beside it. Nothing (an attempt that costs
        nothing more: see the dispatcher's hand_back) always fits, even a spent or overshot budget."""
        if amount_usd == 0:
            return True
        with self._lock:
            if not self._fits(amount_usd):
                return False
            if self.limit is not None:
                self._reserved[key] = self._left() if amount_usd is None else amount_usd
            return True

    def left(self, besides: str | None = None) -> float | None:
        """What is left beside what is spent and reserved (not counting the reservation of
        `besides`); None without a budget."""
        with self._lock:
            return None if self.limit is None else self._left() + self._reserved.get(besides, 0.0)

    def hold(self, key: str, amount_usd: float | None) -> None:
        """What an attempt cost, held for it until it is spent: its slot was given back before
        its end (it waits in the merge queue), and nothing may start on that money meanwhile."""
        if amount_usd and self.limit is not None:
            with self._lock:
                self._reserved[key] = amount_usd

    def release(self, key: str) -> None:
        """The attempt ended: its actual cost is (or will be) spent instead."""
        with self._lock:
            self._reserved.pop(key, None)

    def refusal(self, amount_usd: float | None) -> str | None:
        """Why an attempt that may cost `amount_usd` can never start in this run: it does not
        fit even with nothing reserved. None if it may start, now or once others end."""
        with self._lock:
            if self.limit is None or self._reserved or self._fits(amount_usd):
                return None
            self.refused += 1
            if self._left() <= 0 or amount_usd is None:
                needed = f" (it needed {dollars(amount_usd)} more)" if amount_usd is not None else ""
                return f"the batch's budget of {dollars(self.limit)} is spent{needed}"
            return (f"the batch's budget of {dollars(self.limit)} cannot hold it: it may cost {dollars(amount_usd)}, "
                    f"{dollars(amount_usd - self._left())} more than is left")

    def note(self) -> str:
        if self.limit is None:
            return ""
        said = f"budget: {dollars(self.spent)} of {dollars(self.limit)} spent"
        if self.refused:
            said += "; items that did not fit were not started"
        for key, (model, why) in self.fallbacks.items():
            said += f"\n  {key} ran on its fallback_model {model}: {why}"
        return said

    def _left(self) -> float:
        return self.limit - self.spent - sum(self._reserved.values())

    def _fits(self, amount_usd: float | None) -> bool:
        if self.limit is None:
            return True
        if amount_usd is None:
            return self._left() > 0 and not self._reserved
        return amount_usd <= self._left() + 1e-9


def dollars(amount: float) -> str:
    """Cents, or finer for amounts under a cent (a budget of $0.005 is not $0.01)."""
    return f"${amount:.2f}" if amount >= 0.01 or amount == 0 else f"${amount:.4f}".rstrip("0")
