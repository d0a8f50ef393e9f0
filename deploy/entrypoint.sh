#!/bin/sh
# The image's entry point: refuses to start while a password still holds the example value of
# .env.example (each contains "change-me"), then runs `dialq ARGS`. docker-compose's ${VAR:?}
# can only refuse an empty value, so the check lives here, in every dialq container.
set -eu

weak=""
for name in REDIS_PASSWORD POSTGRES_PASSWORD POSTGRES_APP_PASSWORD FLOWER_BASIC_AUTH \
    DIALQ_BROKER_URL DIALQ_DATABASE_URL; do
    eval "value=\${$name:-}"
    case "$value" in
        *change-me*) weak="$weak $name" ;;
    esac
done

if [ -n "$weak" ]; then
    echo "dialq: refusing to start: these still hold the example passwords of .env.example:$weak" >&2
    echo "dialq: set a password of your own for each in .env (e.g. openssl rand -hex 24)" >&2
    exit 78  # EX_CONFIG
fi

exec dialq "$@"
