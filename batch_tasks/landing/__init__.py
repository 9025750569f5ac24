"""Landing an item's work: the merge queue, its merged states and its plan, review by a
person or an agent, pull requests, notices. Imports executors/ and below; what it needs of
an item's run is landing_item's protocol, not the run itself."""
