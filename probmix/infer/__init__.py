"""How it is fitted: the engine registry (``registry``: every engine, method and option),
``fit`` dispatch (``dispatch``), MAP engines (``map/``), variational engines (``vi/``),
samplers (``mcmc/``) and what they share."""
