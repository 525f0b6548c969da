# Stagecraft worker (and starter) image. No base image is pulled: the
# binaries are static (CGO_ENABLED=0) and scripts/image.sh stages them, with
# the host's CA certificates, under bin/image/ before the build:
#
#   scripts/image.sh                 # builds stagecraft-worker:dev
#   docker compose build worker      # the same, once scripts/image.sh has staged bin/image/
#
# The starter is in the image too: docker run --entrypoint starter ...
FROM scratch

LABEL org.opencontainers.image.title="stagecraft-worker" \
      org.opencontainers.image.description="Stagecraft rollout worker (Temporal) and starter CLI" \
      org.opencontainers.image.source="https://github.com/stagecraft/stagecraft"

# usr/local/bin/{worker,starter} and etc/ssl/certs/ca-certificates.crt
# (when the host had them).
COPY bin/image/ /

ENV PATH=/usr/local/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt

# Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532

ENTRYPOINT ["/usr/local/bin/worker"]
