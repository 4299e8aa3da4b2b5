"""The HTTP service: ``faceaudit serve`` (FastAPI + uvicorn) over one gallery, engine and index.

The outermost layer beside the CLI: it owns no business rule that the gallery does not already enforce,
except who the caller is (API keys and roles) and the two-person review of identification results.
"""

from __future__ import annotations

from faceaudit.service.app import create_app
from faceaudit.service.state import Service, ServiceConfig

__all__ = ["Service", "ServiceConfig", "create_app"]
