#!/bin/sh
# Start one opsportal role: web (migrates first), worker or beat. Anything else runs as a command.
set -e
QUEUES="${CELERY_QUEUES:-default,billing,telemetry,forecasts,alerts,notifications}"
case "$1" in
  web)
    python manage.py migrate --noinput
    exec gunicorn opsportal.wsgi:application --bind 0.0.0.0:8000 \
      --workers "${GUNICORN_WORKERS:-3}" --timeout "${GUNICORN_TIMEOUT:-60}" --access-logfile -
    ;;
  worker)
    exec celery -A opsportal worker -Q "$QUEUES" --loglevel=INFO --concurrency "${CELERY_CONCURRENCY:-2}"
    ;;
  beat)
    exec celery -A opsportal beat --loglevel=INFO
    ;;
  *)
    exec "$@"
    ;;
esac
