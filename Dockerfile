# One image for every llmbus service; the compose file picks the service with
# `command: python -m llmbus.<service>`.
FROM python:3.12-slim AS build
ENV UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir uv
WORKDIR /src
COPY requirements.lock.txt pyproject.toml ./
COPY proto proto
COPY libs libs
COPY services services
# Runtime packages only (no dev tools, no test fixtures), at the versions pinned for CI.
RUN grep -v '^-e ' requirements.lock.txt > /tmp/constraints.txt \
 && uv venv /venv \
 && uv pip install --no-cache --python /venv/bin/python -c /tmp/constraints.txt \
      ./proto ./libs/api ./libs/bus ./libs/config ./libs/providers ./libs/routing ./libs/telemetry \
      ./services/auth ./services/edge ./services/router ./services/worker ./services/mock-upstream \
      ./services/cli

FROM python:3.12-slim
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 LLMBUS_CONFIG=/etc/llmbus/config.yaml
COPY --from=build /venv /venv
COPY config.example.yaml /etc/llmbus/config.yaml
RUN useradd --system --uid 10001 --no-create-home llmbus
USER llmbus
EXPOSE 8317 9464
CMD ["python", "-m", "llmbus.edge"]
