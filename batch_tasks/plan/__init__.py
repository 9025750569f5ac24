"""Reading a plan: task.md (or another tool's plan, through dialects/) into groups and items,
its settings and front matter, the prompt templates, and the plan cache. The bottom of the
house but for agents/ and the package's own few modules: it imports nothing above it."""
