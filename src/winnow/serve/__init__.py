"""`winnow serve`: the REST API and demo page for a trained model (not built yet)."""
