"""``searchsage demo``: the whole system, end to end, on synthetic data or a user's data."""
