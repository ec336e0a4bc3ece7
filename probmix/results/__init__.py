"""What a fit gives: the ``Fit`` type, posterior summaries from draws, relabelling, ArviZ
diagnostics, model selection, engine comparison, export and unit conversion."""
