"""Fixtures shared by every test package."""

from tests.pg import postgres_db_url, postgres_url
from tests.trained import trained_book

__all__ = ["postgres_db_url", "postgres_url", "trained_book"]
