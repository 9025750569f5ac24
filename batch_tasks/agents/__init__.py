"""The agent adapters, by the name used in `agent:`."""

from .base import Agent, Outcome, OutputReader
from .command import CommandAgent

AGENTS: dict[str, Agent] = {agent.name: agent for agent in (CommandAgent(),)}

__all__ = ["AGENTS", "Agent", "Outcome", "OutputReader"]
