"""Near duplicates: search descriptors and candidates (search), pixel verification of a
candidate pair (similarity), and `winnow compare`, which explains one pair (explain)."""
