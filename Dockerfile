# A static ferry binary on a distroless base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /ferry ./cmd/ferry

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /ferry /ferry
ENTRYPOINT ["/ferry"]
CMD ["run", "--config", "/etc/ferry/ferry.yaml"]
