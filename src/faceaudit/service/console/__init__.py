"""The web console (``/ui/``) for reviewers, auditors, the DPO and admins: Jinja2 pages, plain forms."""

from __future__ import annotations

from faceaudit.service.console.routes import install

__all__ = ["install"]
