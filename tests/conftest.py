"""Fixtures shared by every test package, and the hypothesis profiles.

Property tests run derandomized by default so that CI is reproducible: the same commit always
draws the same examples. Set ``CALLQ_HYPOTHESIS_PROFILE=explore`` to draw fresh examples.
"""

import os

from hypothesis import settings

from tests.pg import postgres_db_url, postgres_url
from tests.trained import trained_book

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("CALLQ_HYPOTHESIS_PROFILE", "ci"))

__all__ = ["postgres_db_url", "postgres_url", "trained_book"]
