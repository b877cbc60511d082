# The admission-apiserver image: a static-enough release binary on a distroless base, running as
# the distroless "nonroot" user (65532), which apiservice/statefulset.yaml and
# apiservice/ha/deployment.yaml expect.
#
#   docker build -t ghcr.io/admission-example/admission-apiserver:v0.1.0 .
FROM docker.io/library/rust:1.95-bookworm AS build
# protoc: the etcd client's build generates its gRPC code.
RUN apt-get update && apt-get install -y --no-install-recommends protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p admission-apiserver --bin admission-apiserver \
 && install -D target/release/admission-apiserver /out/admission-apiserver

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/admission-apiserver /admission-apiserver
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/admission-apiserver"]
CMD ["serve", "--bind-address=0.0.0.0"]
