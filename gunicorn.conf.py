"""Gunicorn's settings for `make web` (bin/web), from the environment: README, "In production".

gthread workers: a slow client or a long download holds a thread, not a whole process, and the
process keeps answering gunicorn's heartbeat meanwhile.
"""

from __future__ import annotations

import os

from agenther_site.env import env_int, env_str

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agenther_site.settings")

wsgi_app = "agenther_site.wsgi:application"
bind = [f"{env_str('WEB_HOST', '0.0.0.0')}:{env_int('PORT', 8000)}"]
workers = env_int("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1) + 1)
worker_class = "gthread"
threads = env_int("WEB_THREADS", 4)
timeout = 60
graceful_timeout = 30
# A process is replaced after so many requests, so slow leaks never grow without bound.
max_requests = 2000
max_requests_jitter = 200
# agenther_site.requestlog writes one structured line a request; gunicorn's own goes to stderr.
accesslog = None
errorlog = "-"
# No runtime control socket: one fixed path per user would collide between servers on one host.
control_socket_disable = True


def when_ready(server) -> None:
    from agenther_site.startup import notes

    for note in notes():
        server.log.warning(note)
