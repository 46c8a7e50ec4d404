"""glasslog: a verifiable decision log for deployed AI models.

``glasslog.open(data_dir)`` gives the log (a ``glasslog.ledger.Ledger``);
``glasslog.capture.wrap`` wraps a registered model so every prediction is
logged and receipted; ``glasslog.verify`` checks receipts, the whole log and
replays decisions against the registered weights.
"""

from .capture import open_log as open

__version__ = "0.1.0"
__all__ = ["open", "__version__"]
