"""A run: its state object, the dispatcher, doit's runner, an item's lifecycle and steps,
recovery, retries' context, forecasts from history. Imports landing/ and below."""
