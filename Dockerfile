# A static ferry binary on a distroless base (uid 65532, no shell).
#   docker build --build-arg VERSION=$(git describe --always --dirty) -t ferry .
# docker-compose.yml builds it as is; deploy/helm/ferry runs it on Kubernetes.
# scripts/chart-test.sh checks the lines below that the chart and compose rely on.

# The same Go as go.mod's `go` line.
FROM golang:1.26.8 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" -o /ferry ./cmd/ferry

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /ferry /ferry
USER 65532:65532
# observability.listen: /healthz, /readyz, /metrics.
EXPOSE 9090
ENTRYPOINT ["/ferry"]
CMD ["run", "--config", "/etc/ferry/ferry.yaml"]
