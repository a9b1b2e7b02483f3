# The trading daemon in a container: `docker build -t trader .`
#   docker run -d --name trader -v trader-data:/var/lib/trader trader            # paper, shipped data
#   docker run -d -v trader-data:/var/lib/trader --env-file /etc/trader/trader.env \
#       -v /etc/trader/live.yaml:/etc/trader/live.yaml:ro trader \
#       --config /etc/trader/live.yaml --mode live --confirm
# Secrets come from --env-file or from files mounted under /run/secrets (set
# CREDENTIALS_DIRECTORY=/run/secrets so their values are also masked in the logs).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TRADER_DATA_DIR=/var/lib/trader

RUN groupadd --system --gid 10001 trader \
 && useradd --system --uid 10001 --gid trader --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin trader

WORKDIR /app
# Dependencies and code first, configs and sample data last: edits to configs rebuild fast.
COPY pyproject.toml setup.py README.md ./
COPY build_backend ./build_backend
COPY trader ./trader
COPY gateways ./gateways
COPY models ./models
COPY risk ./risk
RUN pip install '.[fast]'
COPY config ./config
COPY data ./data

RUN mkdir -p /var/lib/trader && chown trader:trader /var/lib/trader && chmod 0750 /var/lib/trader
VOLUME ["/var/lib/trader"]
USER trader

# SIGTERM: stop new orders, flush journal and store, close gateways, exit 0
# (give it more than daemon.shutdown_timeout: docker stop -t 30).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["trader", "status", "--data-dir", "/var/lib/trader", "--check"]
ENTRYPOINT ["trader", "run", "--data-dir", "/var/lib/trader"]
CMD ["--config", "config/paper.yaml", "--mode", "paper"]
