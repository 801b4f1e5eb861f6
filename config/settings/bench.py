"""Benchmark settings: production, plus the baseline views of the ``bench`` app.

Only ``python -m bench`` uses this module; the baselines are unreachable under every other
settings module (``config.urls`` does not know them).
"""

from config.settings.production import *  # noqa: F403
from config.settings.production import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
ROOT_URLCONF = "bench.urls"

# The webhook benchmark (bench/webhooks.py) delivers to receivers on loopback, which production
# refuses; only this module, used by nothing but the benchmarks, lets it ask for them.
from config.settings.base import env  # noqa: E402

WEBHOOK_ALLOW_PRIVATE_NETWORKS = env.bool("BENCH_WEBHOOKS_TO_LOOPBACK", default=False)
