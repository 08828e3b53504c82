"""Near duplicates: the search's settings, exact keys and grouping (search), candidate
descriptors (descriptors) and their nearest neighbours (candidates), verification of the
candidate pairs (verify) on pixels (similarity: aligned comparison; same_size: pixel for
pixel), the matrices both use (resample), and `winnow compare`, which explains one pair
(explain)."""
