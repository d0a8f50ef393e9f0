FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY dialq ./dialq
# Beat's schedule file lives in a volume; an empty named volume takes this directory's owner.
RUN pip install . && useradd --system --uid 10001 dialq \
    && mkdir -p /var/lib/dialq/beat && chown -R dialq /var/lib/dialq
USER dialq
# One image, many roles: the compose file picks the command (worker, beat, flower, sandbox).
ENTRYPOINT ["dialq"]
CMD ["--help"]
