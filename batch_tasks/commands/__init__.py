"""The doit commands batch-tasks adds (run-batch, batch-status, batch-log, batch-graph,
batch-report, batch-clean, batch-review, forget) and the command-line plumbing they share.
The top of the house: nothing imports it but doit's entry points."""
