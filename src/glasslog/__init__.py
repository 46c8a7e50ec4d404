"""glasslog: a verifiable decision log for deployed AI models.

``glasslog.open(data_dir)`` gives the log (a ``glasslog.ledger.Ledger``);
``glasslog.capture.wrap`` wraps a registered model so every prediction is
logged and receipted; ``glasslog.verify`` checks receipts, the whole log and
replays decisions against the registered weights.
"""

__version__ = "0.1.0"
__all__ = ["open", "__version__"]


def __getattr__(name: str):
    # PEP 562: ``glasslog.open`` without importing the model stack for every ``import glasslog``
    if name == "open":
        from .capture import open_log

        return open_log
    raise AttributeError(f"module 'glasslog' has no attribute {name!r}")
