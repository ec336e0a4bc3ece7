"""The ``probmix`` command line (``probmix demo|fit|compare|select``)."""

from probmix.cli.app import main

__all__ = ["main"]
