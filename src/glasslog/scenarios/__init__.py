"""glasslog.scenarios."""
