"""elastogan: virtual strain elastography.

The library (this package) holds the data model, the phantom simulator, the models and the
Tsukuba scorer. ``elastogan.eval``, ``elastogan.training`` and ``elastogan.app`` live in the
repository's top-level ``eval/``, ``training/`` and ``app/`` folders and use the library;
the library never imports them (only the CLI dispatcher does, lazily).
"""

__version__ = "0.1.0"
