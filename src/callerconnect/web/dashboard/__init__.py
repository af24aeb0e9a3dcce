"""The internal dashboard (contract section 9): accounts, figures, comments, work
queues, exports and the audit log, server-rendered without JavaScript."""

from callerconnect.web.dashboard.routes import install_dashboard

__all__ = ["install_dashboard"]
