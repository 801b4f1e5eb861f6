"""Benchmark settings: production, plus the baseline views of the ``bench`` app.

Only ``python -m bench`` uses this module; the baselines are unreachable under every other
settings module (``config.urls`` does not know them).
"""

from config.settings.production import *  # noqa: F403
from config.settings.production import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
ROOT_URLCONF = "bench.urls"
