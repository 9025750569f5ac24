"""What an attempt cost, estimated from its tokens and the model's list price, for agents
that report tokens but no cost (Codex, Gemini).

The prices are genai-prices' (pydantic/genai-prices: a maintained table of providers'
prices, shipped with the package; nothing is fetched). A model the table does not know
has no estimate (None): never a guess. Touches nothing but that table.
"""

from __future__ import annotations

from typing import Mapping


def estimated_cost(provider: str, model: str | None, tokens: Mapping[str, int] | None) -> float | None:
    """US dollars for `tokens` ({input, output, cache_read, cache_write}, `input` without the
    cached ones) of `model` at `provider` ("openai", "google"), or None if unknown."""
    if not model or not tokens:
        return None
    from genai_prices import Usage, calc_price  # here: batches of commands never pay for importing it

    cache_read, cache_write = tokens.get("cache_read") or 0, tokens.get("cache_write") or 0
    usage = Usage(
        input_tokens=(tokens.get("input") or 0) + cache_read + cache_write,  # its input counts the cached too
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        output_tokens=tokens.get("output") or 0,
    )
    try:
        price = calc_price(usage, model_ref=model, provider_id=provider)
    except LookupError:
        return None
    return round(float(price.total_price), 6)

