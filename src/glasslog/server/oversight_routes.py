"""HTTP routes for oversight: flags, ratings, monitors' findings and the triage queue (see ``glasslog.oversight``)."""
