"""Estimated costs for agents that report only tokens: genai-prices' table, or nothing."""

import pytest

from batch_tasks.agents.pricing import estimated_cost


def tokens(input=0, output=0, cache_read=0, cache_write=0) -> dict:
    return {"input": input, "output": output, "cache_read": cache_read, "cache_write": cache_write}


@pytest.mark.parametrize("provider, model", [("openai", "gpt-5.5"), ("openai", "gpt-5-codex"),
                                             ("google", "gemini-2.5-flash"), ("google", "gemini-2.5-pro")])
def test_a_known_model_costs_by_its_tokens(provider, model):
    one = estimated_cost(provider, model, tokens(input=1000, output=100))
    assert one > 0
    assert estimated_cost(provider, model, tokens(input=2000, output=200)) == pytest.approx(2 * one, rel=1e-3)
    # Tokens read from the cache cost less than the same tokens read afresh.
    cached = estimated_cost(provider, model, tokens(input=0, cache_read=1000, output=100))
    assert 0 < cached < one


@pytest.mark.parametrize("provider, model, given", [
    ("openai", "gpt-unreleased-9", tokens(input=10)),  # not in the table: no guess
    ("google", "auto", tokens(input=10)),  # gemini's init, before it chose
    ("google", None, tokens(input=10)),
    ("openai", "gpt-5.5", None),
])
def test_no_estimate_without_a_known_model_and_tokens(provider, model, given):
    assert estimated_cost(provider, model, given) is None


def test_a_sessions_tokens_summed_over_its_turns_are_not_priced_at_a_long_context_rate():
    # 1,000,000 input tokens over a session's turns, none of them past 200,000: $3 a
    # million, not the $6 of one request that long.
    sonnet = "claude-sonnet-4-5-20250929"
    assert estimated_cost("anthropic", sonnet, {"input": 1_000_000}) == 3.0
    assert estimated_cost("anthropic", sonnet, {"input": 1_000_000, "cache_read": 2_000_000, "output": 30_000}) == \
        pytest.approx(10 * estimated_cost("anthropic", sonnet, {"input": 100_000, "cache_read": 200_000, "output": 3_000}))
