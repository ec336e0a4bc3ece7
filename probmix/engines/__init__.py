"""Inference engines. Each takes a declared model and data and returns a :class:`probmix.Fit`."""
