"""``python -m glasslog.witness ...``: the witness's commands alone, without glasslog's model stack."""

from .cli import main

main()
