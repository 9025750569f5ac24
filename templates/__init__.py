"""The default prompt templates, installed as the package data `batch_tasks.templates`."""
