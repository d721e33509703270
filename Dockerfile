# The wxhub binary in a small image; docker-compose.yml runs every role from it.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /wxhub ./cmd/wxhub

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /wxhub /wxhub
ENTRYPOINT ["/wxhub"]
