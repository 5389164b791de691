# The Slack double as an image, for `docker compose --profile dev`: a stand-in for Slack's
# Web API in local stacks and smoke tests. Like the server's Dockerfile, a binary put at
# dist/slack-double is used as it is.
ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN if [ -x dist/slack-double ]; then \
      install -D -m 0755 dist/slack-double /out/slack-double; \
    else \
      cargo build --release --locked -p slack-double \
      && install -D -m 0755 target/release/slack-double /out/slack-double; \
    fi

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/slack-double /usr/local/bin/slack-double
EXPOSE 8765
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/slack-double"]
