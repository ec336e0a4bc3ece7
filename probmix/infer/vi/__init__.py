"""Variational engines: closed-form CAVI for the conjugate Gaussian mixture, Pyro SVI for
any program."""
