# syntax=docker/dockerfile:1
# Build: docker build -t failoverdns .
# Run:   docker run -d --name failoverdns -p 53:53/udp -p 53:53/tcp \
#          -v /etc/failoverdns:/etc/failoverdns:ro -v failoverdns-state:/var/lib/failoverdns failoverdns

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# Static: no libc in the final image. -trimpath keeps build paths out.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/failoverdns ./cmd/failoverdns
# The process runs as an unprivileged user; the file capability lets it bind
# port 53 and nothing else a root process could do.
RUN apt-get update && apt-get install -y --no-install-recommends libcap2-bin \
 && setcap cap_net_bind_service=+ep /out/failoverdns
RUN mkdir -p /out/state /out/etc && echo 'failoverdns:x:65532:65532::/var/lib/failoverdns:/sbin/nologin' > /out/etc/passwd \
 && echo 'failoverdns:x:65532:' > /out/etc/group

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/etc/passwd /out/etc/group /etc/
COPY --from=build /out/failoverdns /usr/local/bin/failoverdns
COPY --from=build --chown=65532:65532 /out/state /var/lib/failoverdns
USER 65532:65532
EXPOSE 53/udp 53/tcp 8053/tcp
VOLUME ["/var/lib/failoverdns"]
# The config's [server] listen should be ["0.0.0.0:53", "[::]:53"] (IPv4 and
# IPv6, two sockets) and http "0.0.0.0:8053" (or 127.0.0.1:8053 to keep
# metrics inside the container).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD ["/usr/local/bin/failoverdns", "healthcheck", "-config", "/etc/failoverdns/failoverdns.toml"]
ENTRYPOINT ["/usr/local/bin/failoverdns"]
CMD ["-config", "/etc/failoverdns/failoverdns.toml"]
