# syntax=docker/dockerfile:1
# The `dnm` image: `dnm train`, `dnm node` (docs/cluster.md, docs/kubernetes.md), `dnm data fetch`, eval, map.
#
#   docker build -t dnm:cpu .                                # CPU (TorchSharp + libtorch-cpu-linux-x64)
#   docker build -t dnm:cuda --build-arg TORCH_BACKEND=cuda .  # CUDA 12.8 (TorchSharp-cuda-linux, libtorch 2.10 cu128)
#
# scripts/check-dockerfile checks this file without a Docker engine (COPY sources, the published entry point, the
# cuda package switch, hadolint where installed); CI runs it through tests/Dnm.Deploy.Tests.

# The .NET SDK/runtime major.minor. .NET 10's images are Ubuntu 24.04 ("noble"); the tags say so explicitly, so the SDK
# stage (where the build decides whether libLibTorchSharp.so needs its GLIBCXX_3.4.32 fix, see
# build/LibTorchSharpCompat.targets) and the runtime stage have the same libstdc++ (GCC 14: the fix is not needed).
ARG DOTNET_VERSION=10.0
# cpu | cuda: picks the TorchSharp package (build/Torch.props) and the runtime base image below.
ARG TORCH_BACKEND=cpu
# libtorch 2.10 (TorchSharp 0.107's cuda package) is built against CUDA 12.8 and cuDNN 9.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# ---- build: restore, then publish `dnm` to /app ----
FROM mcr.microsoft.com/dotnet/sdk:${DOTNET_VERSION}-noble AS build
ARG TORCH_BACKEND
WORKDIR /src
ENV DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
# Restore first, from the project files only, so a source change does not download libtorch again.
COPY global.json .editorconfig Directory.Build.props Directory.Build.targets Directory.Packages.props ./
COPY build/ build/
COPY src/Dnm.Core/Dnm.Core.csproj src/Dnm.Core/
COPY src/Dnm.Cluster/Dnm.Cluster.csproj src/Dnm.Cluster/
COPY src/Dnm.Node/Dnm.Node.csproj src/Dnm.Node/
RUN dotnet restore src/Dnm.Node -p:TorchBackend=${TORCH_BACKEND}
COPY src/ src/
RUN dotnet publish src/Dnm.Node -c Release --no-restore -p:TorchBackend=${TORCH_BACKEND} -o /app \
 && test -x /app/dnm

# ---- runtime bases: one per backend; the last stage picks one by TORCH_BACKEND ----
# Dnm.Node references Microsoft.AspNetCore.App (Kestrel serves /metrics, /healthz, /readyz): the aspnet runtime, not
# the plain .NET runtime.
FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION}-noble AS runtime-cpu

FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION}-noble AS dotnet-runtime

FROM ${CUDA_IMAGE} AS runtime-cuda
# The .NET dependencies on Ubuntu 24.04 (no ICU: the build sets InvariantGlobalization), then the ASP.NET Core runtime
# copied from Microsoft's image of the same Ubuntu release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3t64 libstdc++6 libgcc-s1 tzdata zlib1g \
 && rm -rf /var/lib/apt/lists/*
COPY --from=dotnet-runtime /usr/share/dotnet /usr/share/dotnet
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet
ENV DOTNET_ROOT=/usr/share/dotnet

# ---- the image ----
# hadolint ignore=DL3006
FROM runtime-${TORCH_BACKEND} AS runtime
ARG TORCH_BACKEND
LABEL org.opencontainers.image.title="dnm" \
      org.opencontainers.image.description="Deep Neural Maps: train, evaluate and map; one node of a training cluster" \
      org.opencontainers.image.source="https://github.com/dnm/dnm" \
      dnm.torch-backend="${TORCH_BACKEND}"
# A non-root user with a fixed numeric id, so Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 dnm \
 && useradd --system --uid 10001 --gid dnm --create-home --home-dir /home/dnm dnm \
 && mkdir -p /data /runs \
 && chown dnm:dnm /data /runs
COPY --from=build /app /app
# The shipped run presets: dnm train --config /app/configs/mnist-mlp.json
COPY configs/ /app/configs/
RUN ln -s /app/dnm /usr/local/bin/dnm
# No allocator or thread variables: Dnm applies the allocator settings the benchmarks found best itself, at start-up
# (mallopt: no mmap and no trimming for libtorch's large buffers; NativeTuning.cs), and sets torch's threads itself
# (--threads / "threads"). MALLOC_ARENA_MAX=1 was once needed (worker steps 6x slower without it); re-measured since
# the step engine sizes its shards below glibc's per-thread heap, it makes no difference (docs/BENCHMARKS.md, Cluster).
# DNM_DATA: the dataset cache (MNIST is fetched into it); /runs: run directories (checkpoints). Both are volumes.
ENV DNM_DATA=/data \
    DNM_METRICS_PORT=9464 \
    HOME=/home/dnm
VOLUME ["/data", "/runs"]
WORKDIR /runs
# 4053: Akka remoting (DNM_PORT); 9464: /metrics, /healthz, /readyz. The data-plane port is DNM_DATA_PLANE_PORT.
EXPOSE 4053 9464
USER 10001:10001
# Through /healthz of the metrics endpoint, which `dnm train` and `dnm node` serve (not one-shot commands like
# `dnm eval`). bash's /dev/tcp instead of curl: neither base image has curl, and bash is in both.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${DNM_METRICS_PORT:-9464} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["dnm"]
CMD ["--help"]
