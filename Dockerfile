# connector-server's image: built in a Rust image, run in a distroless one as a non-root user
# with no shell. The base images are build arguments, so a machine without a registry can
# build it on local bases (scripts/compose-smoke.sh does).
#
#   docker build -t slack-connector .
#
# A binary put at dist/connector-server before the build (built on the host for the same
# glibc) is used as it is instead of compiling in the image.
ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN if [ -x dist/connector-server ]; then \
      install -D -m 0755 dist/connector-server /out/connector-server; \
    else \
      cargo build --release --locked -p connector-server \
      && install -D -m 0755 target/release/connector-server /out/connector-server; \
    fi

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/connector-server /usr/local/bin/connector-server
# gRPC, the public HTTP listener (Slack's events, the OAuth pages) and the admin one
# (/healthz, /readyz, /metrics); bind all interfaces in a container (the manifests expose the
# admin port inside the cluster only).
ENV CONNECTOR__GRPC__LISTEN_ADDR=0.0.0.0:50051 \
    CONNECTOR__HTTP__LISTEN_ADDR=0.0.0.0:8080 \
    CONNECTOR__ADMIN__LISTEN_ADDR=0.0.0.0:9090 \
    CONNECTOR__LOG__FORMAT=json
EXPOSE 50051 8080 9090
# distroless' "nonroot" user; the same ID on other bases.
USER 65532:65532
# Probes: gRPC grpc.health.v1 on 50051, or HTTP GET /healthz on 9090 (no shell or curl in
# the image for a HEALTHCHECK command).
ENTRYPOINT ["/usr/local/bin/connector-server"]
