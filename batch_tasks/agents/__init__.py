"""The agent adapters, by the name used in `agent:`; beside them what an agent's tokens cost
(pricing) and what to do after each way an agent fails (retry). The layer above the package's
own few modules: it imports nothing else of the package."""

from .base import CONTEXT_OVERFLOW, HANG, MAX_TURNS, PERMANENT, TOOL_LOOP, TRANSIENT, WAIT, Agent, Outcome, OutputReader
from .claude import ClaudeAgent
from .codex import CodexAgent
from .command import CommandAgent
from .gemini import GeminiAgent

AGENTS: dict[str, Agent] = {agent.name: agent for agent in (CommandAgent(), ClaudeAgent(), CodexAgent(), GeminiAgent())}

__all__ = ["AGENTS", "CONTEXT_OVERFLOW", "HANG", "MAX_TURNS", "PERMANENT", "TOOL_LOOP", "TRANSIENT", "WAIT", "Agent",
           "Outcome", "OutputReader"]
