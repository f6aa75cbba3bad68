# syntax=docker/dockerfile:1
# Build: deploy/build-image.sh (docker, or podman/buildah with --format docker,
#        which keeps the HEALTHCHECK; the OCI format drops it)
# Run:   docker run -d --name failoverdns -p 53:53/udp -p 53:53/tcp \
#          -v /etc/failoverdns:/etc/failoverdns:ro -v failoverdns-state:/var/lib/failoverdns failoverdns
# Image names are fully qualified: podman and buildah do not guess a registry.

FROM docker.io/library/golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The build context has no .git (.dockerignore), so the version and the VCS
# revision come in as arguments (deploy/build-image.sh passes them).
ARG VERSION=dev
ARG REVISION=unknown
# TAGS=cluster links cluster mode (README "Running several nameservers").
ARG TAGS=
# Static: no libc in the final image. -trimpath keeps build paths out.
RUN CGO_ENABLED=0 go build -trimpath -tags "${TAGS}" -ldflags "-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" -o /out/failoverdns ./cmd/failoverdns
# The process runs as an unprivileged user; the file capability lets it bind
# port 53 and nothing else a root process could do.
RUN apt-get update && apt-get install -y --no-install-recommends libcap2-bin \
 && setcap cap_net_bind_service=+ep /out/failoverdns
RUN mkdir -p /out/state /out/etc && echo 'failoverdns:x:65532:65532::/var/lib/failoverdns:/sbin/nologin' > /out/etc/passwd \
 && echo 'failoverdns:x:65532:' > /out/etc/group

FROM scratch
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="failoverdns" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/etc/passwd /out/etc/group /etc/
COPY --from=build /out/failoverdns /usr/local/bin/failoverdns
COPY --from=build --chown=65532:65532 /out/state /var/lib/failoverdns
USER 65532:65532
EXPOSE 53/udp 53/tcp 8053/tcp
VOLUME ["/var/lib/failoverdns"]
# The config's [server] listen should be ["0.0.0.0:53", "[::]:53"] (IPv4 and
# IPv6, two sockets) and http "0.0.0.0:8053" (or 127.0.0.1:8053 to keep
# the endpoints inside the container); /metrics and /status answer
# http_nets only (by default admin_nets): add the scraper's network.
# Healthy means ready: the first probe round is done and the listeners are
# bound (/readyz), not merely alive.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD ["/usr/local/bin/failoverdns", "healthcheck", "-ready", "-config", "/etc/failoverdns/failoverdns.toml"]
ENTRYPOINT ["/usr/local/bin/failoverdns"]
CMD ["-config", "/etc/failoverdns/failoverdns.toml"]
