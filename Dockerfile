# Builds the one `backforge` binary; docker-compose.yml runs it as several services.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p backforge

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 backforge
COPY --from=build /src/target/release/backforge /usr/local/bin/backforge
USER backforge
ENV BACKFORGE_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["backforge"]
CMD ["serve"]
