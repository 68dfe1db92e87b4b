# Relais: one image for every node role (the hub and every member organisation's node).
#
# Docker is not needed for the demo (`make run`). This image runs one real node's Relais
# process, `relais node run`, configured by RELAIS_* variables; its nats-server and its
# PostgreSQL run beside it (see deploy/compose/ and deploy/README.md).
#
#   docker build -t relais .
#   docker run --env-file node.env -p 127.0.0.1:8000:8000 relais
#
# The same image runs the command line for the node's database, for example its first admin:
#   docker compose -f deploy/compose/member.yml exec relais relais user add alice --role admin

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The process runs as this user, never as root.
RUN groupadd --system --gid 10001 relais \
    && useradd --system --uid 10001 --gid relais --home-dir /home/relais --create-home \
       --shell /usr/sbin/nologin relais

# Only what the package needs: no virtual environment, data or secrets from the build folder.
WORKDIR /src
COPY pyproject.toml requirements.lock ./
COPY shared ./shared
COPY services ./services
COPY deploy ./deploy
# The versions pinned in requirements.lock, for Relais and everything it depends on.
RUN pip install -c requirements.lock . \
    && rm -rf /src

USER relais
WORKDIR /home/relais

# In a container the node must listen on every interface to be reachable; publish the port on
# the host's loopback and put an HTTPS reverse proxy in front (see deploy/README.md).
ENV RELAIS_HTTP_HOST=0.0.0.0 \
    RELAIS_HTTP_PORT=8000
EXPOSE 8000

# /healthz answers once the node has started (connected, migrated, consuming); /readyz says
# whether it is ready right now. The start period covers migrations on a first start.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('RELAIS_HTTP_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["relais", "node", "run"]
