# syntax=docker/dockerfile:1
# Build stage: resolve the locked dependencies into a virtual environment with uv.
FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first, so code changes do not invalidate this layer.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY src ./src
RUN uv sync --frozen --no-dev --no-editable

# Runtime stage: the virtual environment, the migrations, and an unprivileged user.
FROM python:3.11-slim AS runtime
RUN useradd --system --uid 10001 --user-group --create-home instashare
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY alembic.ini ./
COPY migrations ./migrations
RUN mkdir -p /app/var && chown instashare:instashare /app/var
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    LOG_JSON=true
USER instashare
EXPOSE 8000
# Any number of replicas may start at once: upgrades take turns on a PostgreSQL advisory lock.
CMD ["sh", "-c", "alembic upgrade head && exec instashare serve --host 0.0.0.0 --port 8000 --no-worker"]
