"""What an attempt cost, estimated from its tokens and the model's list price, for agents
that report tokens but no cost (Codex, Gemini); and what the prompt cache saved.

The prices are genai-prices' (pydantic/genai-prices: a maintained table of providers'
prices, shipped with the package; nothing is fetched). A model the table does not know
has no estimate (None): never a guess. Touches nothing but that table.
"""

from __future__ import annotations

from typing import Mapping

TURN_TOKENS = 100_000  # input tokens priced at once: below every long-context tier of the table


def estimated_cost(provider: str, model: str | None, tokens: Mapping[str, int] | None) -> float | None:
    """US dollars for `tokens` ({input, output, cache_read, cache_write}, `input` without the
    cached ones) of `model` at `provider` ("openai", "google"), or None if unknown."""
    if not model or not tokens:
        return None
    from genai_prices import Usage, calc_price  # here: batches of commands never pay for importing it

    cache_read, cache_write = tokens.get("cache_read") or 0, tokens.get("cache_write") or 0
    fresh, output = tokens.get("input") or 0, tokens.get("output") or 0
    # The counts are a session's, summed over its turns; the table prices one request, and
    # past 200,000 input tokens at a long-context rate (twice Sonnet's) that no turn of the
    # session reached. So a share of each count small enough for one turn is priced, times
    # the number of shares: prices are linear below a tier.
    shares = max(1, -(-(fresh + cache_read + cache_write) // TURN_TOKENS))
    usage = Usage(
        input_tokens=round((fresh + cache_read + cache_write) / shares),  # its input counts the cached too
        cache_read_tokens=round(cache_read / shares),
        cache_write_tokens=round(cache_write / shares),
        output_tokens=round(output / shares),
    )
    try:
        price = calc_price(usage, model_ref=model, provider_id=provider)
    except LookupError:
        return None
    return round(float(price.total_price) * shares, 6)



def cache_saving(provider: str, model: str | None, tokens: Mapping[str, int] | None) -> float | None:
    """What the prompt cache saved: the same tokens' price with none of them cached, less
    their price as they were (reads cheaper, writes dearer), or None if unknown."""
    if not tokens or not (tokens.get("cache_read") or tokens.get("cache_write")):
        return None
    uncached = {"input": sum(tokens.get(name) or 0 for name in ("input", "cache_read", "cache_write")),
                "output": tokens.get("output") or 0}
    without, actual = estimated_cost(provider, model, uncached), estimated_cost(provider, model, tokens)
    return None if without is None or actual is None else round(without - actual, 6)
