"""glasslog: a verifiable decision log for deployed AI models."""
