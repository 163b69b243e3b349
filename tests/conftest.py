import os

from hypothesis import HealthCheck, settings

# Modest example counts: the whole suite must stay within a few minutes on 2 cores.
settings.register_profile(
    "default",
    max_examples=int(os.environ.get("AUTOVMAP_MAX_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("default")
