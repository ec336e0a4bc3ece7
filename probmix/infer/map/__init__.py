"""Posterior-mode (MAP / maximum-likelihood) engines: closed-form EM (batch, streamed,
online) and gradient MAP for any Pyro program."""
