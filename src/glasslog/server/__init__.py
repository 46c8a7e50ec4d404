"""HTTP API (FastAPI): C2SP tiles for verifiers, a JSON API with a view per role."""

from .app import create_app

__all__ = ["create_app"]
