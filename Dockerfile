# Container image of the operator. Not built on the project's development machines (no
# container engine runs there); CI for images is expected to run `docker build .` elsewhere.
#
# Stage 1: a release build, dependencies cached in their own layer.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
# Everything cargo needs to read the workspace's manifests, or it stops before building
# anything: the workspace member crates/synthetic-registry and the [[bench]] target's file
# (tests/packaging.rs checks this list against Cargo.toml). src/ is a stub in this layer.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY benches ./benches
RUN mkdir -p src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && cargo build --release --locked --bin registry-operator
COPY src ./src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin registry-operator \
    && install -m 0755 target/release/registry-operator /registry-operator

# Stage 2: distroless, non-root, no shell. rustls needs no OpenSSL; glibc comes from cc.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /registry-operator /usr/local/bin/registry-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/registry-operator"]
CMD ["run"]
