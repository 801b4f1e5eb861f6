"""The PostgreSQL backend: django-prometheus's (Django's own, counting connections, queries and
errors for /metrics), with a health check that costs no query.

Django checks a kept connection before a request's (and here a task's) first query
(``CONN_HEALTH_CHECKS``) with ``SELECT 1``: a round trip to PostgreSQL, and a statement for it
to parse and run, for every request. An idle connection has nothing to read, though: the only
things a server sends one unasked are its goodbye (a restart, ``pg_terminate_backend``, an idle
timeout: an error message, then the end of the stream) and the occasional notice. So a socket
with anything to read is taken for dead, and Django opens a new connection; one without is
used. What neither check sees (a peer gone without a word, a cable cut) fails the query itself,
as it would have failed ``SELECT 1``.
"""

from __future__ import annotations

import select

from django_prometheus.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        try:
            readable, _, _ = select.select([connection.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable
