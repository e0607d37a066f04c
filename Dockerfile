# Builds the one `backforge` binary; docker-compose.yml runs it as several services.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p backforge

FROM debian:bookworm-slim
# python3 and python3-venv: `verify` builds a virtualenv and runs the generated app's pytest suite.
# bubblewrap: the sandbox that runs untrusted code. Both are Debian's own packages, which the
# sandbox expects (/usr/bin/python3, /usr/bin/bwrap). curl: the health check below.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates curl python3 python3-venv bubblewrap \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /var/lib/backforge backforge \
    && install -d -m 0700 -o backforge -g backforge /var/lib/backforge/cache
COPY --from=build /src/target/release/backforge /usr/local/bin/backforge
USER backforge
WORKDIR /var/lib/backforge
# The worker's virtualenvs and generator cache, private to the user; a compose volume keeps them
# (a fresh named volume takes this directory's owner and mode).
ENV BACKFORGE_CACHE_DIR=/var/lib/backforge/cache
ENV BACKFORGE_ADDR=0.0.0.0:8080
EXPOSE 8080
# Liveness on the port of BACKFORGE_ADDR, whichever part runs (every serving subcommand answers
# /health there); `migrate` and the other one-shot commands exit before it matters.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${BACKFORGE_ADDR##*:}/health" || exit 1
ENTRYPOINT ["backforge"]
CMD ["serve"]
