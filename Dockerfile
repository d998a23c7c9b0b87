# The gateway as a container image: python:3.11-slim (Spyne 2.14 needs Python 3.11),
# the locked dependencies installed with their hashes, the project on top of them, run
# as a user of its own. docs/deployment.md#container says how to run it.
#
#   docker build -t provisioning-gateway .
#   docker run -p 8280:8280 -e GATEWAY_ADMIN_USER=admin -e GATEWAY_ADMIN_PASSWORD=… \
#       -v gateway-data:/var/lib/gateway provisioning-gateway
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# the lock first (its own layer: code changes do not reinstall the dependencies); every
# package is checked against its hash, PostgreSQL (asyncpg) and LDAP (ldap3) included
COPY requirements/runtime.txt /app/requirements/runtime.txt
RUN python -m pip install --require-hashes --no-deps -r /app/requirements/runtime.txt

# the project, installed in place without dependencies (everything is in the lock): its
# WSDL and SPML files under wsdl/ are read from the source folder, as in a checkout
COPY . /app
WORKDIR /app
RUN python -m pip install --no-deps --no-build-isolation -e . \
    && gateway --version \
    && useradd --system --uid 10001 --home-dir /var/lib/gateway --shell /usr/sbin/nologin gateway \
    && mkdir -p /var/lib/gateway /etc/gateway \
    && chown gateway:gateway /var/lib/gateway

# the configuration: a file mounted at /etc/gateway/gateway.toml (GATEWAY_CONFIG), and/or
# GATEWAY__<SECTION>__<KEY> variables (docs/configuration.md); without a file the gateway
# keeps its SQLite database gateway.db in /var/lib/gateway (the working folder: a volume)
ENV GATEWAY__SERVER__HOST=0.0.0.0 \
    GATEWAY__SERVER__PORT=8280
VOLUME ["/var/lib/gateway"]
WORKDIR /var/lib/gateway
USER gateway:gateway
EXPOSE 8280

# ready: PRIMARY (and every store marked required) answers, over HTTP or, with [server]
# cert_file, HTTPS (deploy/healthcheck.py: the standard library only)
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]

# SIGTERM (docker stop) lets the requests in flight finish ([server]
# shutdown_grace_seconds, 10 s): give docker stop more than that (--time 20)
STOPSIGNAL SIGTERM
ENTRYPOINT ["gateway"]
CMD ["serve"]
