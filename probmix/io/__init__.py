"""Data in and results out: input validation, file loaders, streaming sources, the built-in
data sets, and the safe save/load format."""
