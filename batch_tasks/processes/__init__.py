"""Processes: starting and supervising an agent or a check, its sandbox, its output, its
watchdog, ports, and how a stop is told. Imports repository/ and below."""
