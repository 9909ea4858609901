"""The system under test: a customer <-> artist messaging service (aiohttp, PostgreSQL, Redis, S3)."""

__version__ = "0.1.0"
