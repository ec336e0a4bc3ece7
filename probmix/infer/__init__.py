"""How it is fitted: the engine registry and ``fit`` dispatch (``dispatch``), MAP engines
(``map/``), variational engines (``vi/``), samplers (``mcmc/``) and what they share."""
