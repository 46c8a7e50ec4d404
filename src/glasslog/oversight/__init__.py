"""glasslog.oversight."""
