"""glasslog.audit."""
