"""Transports: HTTP handlers (and, next, socket.io) over the shared services."""
