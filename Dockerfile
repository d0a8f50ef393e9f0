FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY dialq ./dialq
# Refuses to start while .env still holds the example passwords, then runs dialq.
COPY deploy/entrypoint.sh /usr/local/bin/dialq-entrypoint
# The tested versions (constraints.txt, `make lock`). Beat's schedule file lives in a volume; an
# empty named volume takes this directory's owner.
RUN pip install -c constraints.txt . && useradd --system --uid 10001 dialq \
    && mkdir -p /var/lib/dialq/beat && chown -R dialq /var/lib/dialq
USER dialq
# One image, many roles: the compose file picks the command (worker, beat, flower, sandbox).
ENTRYPOINT ["dialq-entrypoint"]
CMD ["--help"]
