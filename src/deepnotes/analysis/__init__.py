"""Analysis tools: numerical gradient checks (``gradcheck``)."""

from .gradcheck import gradcheck

__all__ = ["gradcheck"]
