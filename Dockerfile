# syntax=docker/dockerfile:1
# Nexus as a container: built on the official .NET SDK image, run on the official ASP.NET Core runtime image as a
# non-root user. The root filesystem may be read-only (docker run --read-only / compose read_only: true): Nexus
# writes only to /data (a volume: the SQLite file and its lock, nothing on PostgreSQL) and, when given one, /tmp.
# See docs/deployment.md; scripts/check-dockerfile.sh checks that every path copied here exists and that the
# ENTRYPOINT names the published binary.

# ---- build ------------------------------------------------------------------------------------------------
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
# ReadyToRun for the image's architecture (TARGETARCH: amd64 or arm64, set by BuildKit; amd64 without it): Nexus and
# its NuGet packages ship precompiled, so a start JITs less than half as many methods and takes about a quarter less
# CPU to ready (bench/footprint.sh, bench/results/footprint.md). Still framework-dependent on the runtime image; hot
# methods are recompiled by tiered compilation as before, so throughput is unchanged.
ARG TARGETARCH=amd64
WORKDIR /src
# Restore first, from the project files alone, so that a code change does not download the packages again.
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY src/Nexus.Sdk/Nexus.Sdk.csproj src/Nexus.Sdk/
COPY src/Nexus.Server/Nexus.Server.csproj src/Nexus.Server/
RUN dotnet restore src/Nexus.Server/Nexus.Server.csproj -a "$TARGETARCH" -p:PublishReadyToRun=true
COPY src/Nexus.Sdk/ src/Nexus.Sdk/
COPY src/Nexus.Server/ src/Nexus.Server/
RUN dotnet publish src/Nexus.Server/Nexus.Server.csproj -c Release -a "$TARGETARCH" -p:PublishReadyToRun=true --no-restore -o /app \
 && mkdir -p /data

# ---- run --------------------------------------------------------------------------------------------------
FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
WORKDIR /app
COPY --from=build /app ./
# The data folder belongs to the image's non-root user ("app", uid $APP_UID = 1654); mount a volume there.
COPY --from=build --chown=app:app /data /data
VOLUME ["/data"]
# Production unless told otherwise (then ENCRYPTION_KEY is required). Port 8080, the image's unprivileged default.
# DOTNET_EnableDiagnostics=0: no diagnostics IPC socket in /tmp, so a read-only root filesystem needs no tmpfs.
ENV ASPNETCORE_ENVIRONMENT=Production \
    ASPNETCORE_HTTP_PORTS=8080 \
    Nexus__DataDirectory=/data \
    DOTNET_EnableDiagnostics=0
EXPOSE 8080
USER $APP_UID
# The runtime image has no curl: the binary asks its own /healthz (Hosting/HealthCheckCommand.cs), exit 0 or 1.
HEALTHCHECK --interval=15s --timeout=6s --start-period=30s --retries=3 CMD ["/app/Nexus.Server", "healthcheck"]
ENTRYPOINT ["/app/Nexus.Server"]
