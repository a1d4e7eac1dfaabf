"""`make run`: the whole gateway as local processes."""
