# One image for all four services: the chart picks the entry point with the container args
# (services/<name>/dist/main.js). Node 20 because the uWebSockets.js build has Node 16/18/20
# binaries only.
#
# Behind a TLS-intercepting proxy, hand npm the proxy's CA as a build secret; it is mounted for
# the npm steps only and never lands in a layer:
#   docker build --secret id=npm-ca,src=/etc/ssl/certs/ca-certificates.crt .
ARG NODE_IMAGE=node:20-bookworm-slim

# Manifests first, so the dependency layers are cached until a package.json changes; npm's
# download cache is a build cache mount, kept between builds and never part of a layer.
FROM ${NODE_IMAGE} AS manifests
WORKDIR /app
COPY package.json package-lock.json ./
COPY services/shared/package.json services/shared/
COPY services/ingest/package.json services/ingest/
COPY services/persister/package.json services/persister/
COPY services/query/package.json services/query/
COPY services/realtime/package.json services/realtime/
COPY web/package.json web/
COPY e2e/package.json e2e/

FROM manifests AS deps
RUN --mount=type=secret,id=npm-ca --mount=type=cache,target=/root/.npm,sharing=locked \
    if [ -s /run/secrets/npm-ca ]; then export NPM_CONFIG_CAFILE=/run/secrets/npm-ca; fi; \
    npm ci --no-audit --no-fund --ignore-scripts

FROM deps AS build
COPY tsconfig.json tsconfig.base.json ./
COPY services services
RUN npx tsc -b

# Production dependencies only: no TypeScript, test tools or embedded Postgres. uWebSockets.js
# ships a binary for every platform, architecture and Node ABI (18 of them, 113 MiB); only the
# one this image's node loads is kept (its loader falls back to a slow JS server without it).
FROM manifests AS prod-deps
RUN --mount=type=secret,id=npm-ca --mount=type=cache,target=/root/.npm,sharing=locked \
    if [ -s /run/secrets/npm-ca ]; then export NPM_CONFIG_CAFILE=/run/secrets/npm-ca; fi; \
    npm ci --omit=dev --no-audit --no-fund --ignore-scripts
RUN uws="$(dirname "$(node -p 'require.resolve("uWebSockets.js/package.json", { paths: ["services/realtime"] })')")" \
    && keep="uws_$(node -p 'process.platform + "_" + process.arch + "_" + process.versions.modules').node" \
    && test -f "$uws/binaries/$keep" \
    && find "$uws" -name 'uws_*.node' ! -path "$uws/binaries/$keep" -delete

# Tilt's live_update target: full toolchain, sources synced in, `tsc -b` re-run on change and
# `node --watch` (set by the dev values) restarting the service on new output. Tilt writes the
# synced files and the compiler its output as the pod's user (uid 1000), so everything but the
# installed dependencies belongs to that user (a manifest change rebuilds the image instead).
FROM build AS dev
COPY web web
RUN find /app -name node_modules -prune -o -exec chown 1000:1000 {} +
ENV NODE_ENV=development
USER 1000:1000
ENTRYPOINT ["node"]
CMD ["services/ingest/dist/main.js"]

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Manifests and production node_modules (root and per workspace), then the compiled services.
COPY --from=prod-deps /app ./
COPY --from=build /app/services/shared/dist services/shared/dist
COPY --from=build /app/services/ingest/dist services/ingest/dist
COPY --from=build /app/services/persister/dist services/persister/dist
COPY --from=build /app/services/query/dist services/query/dist
COPY --from=build /app/services/realtime/dist services/realtime/dist
COPY services/persister/migrations services/persister/migrations
COPY web web
# A numeric non-root user (the image's own "node"), so runAsNonRoot can verify it; nothing is
# written outside /tmp (an emptyDir in the chart), so the root filesystem can be read-only.
USER 1000:1000
ENTRYPOINT ["node"]
CMD ["services/ingest/dist/main.js"]
