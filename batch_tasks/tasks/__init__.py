"""The plan as doit tasks: loading a batch (plan, state and isolation together), its tasks,
the no-op and the plan's graph. Imports isolation/ and below."""
