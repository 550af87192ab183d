"""Drop-in names for users of other profilers' APIs."""
