# syntax=docker/dockerfile:1
# One image for all four services: the chart picks the entry point with the container args
# (services/<name>/dist/main.js). Node 20 because the uWebSockets.js build has Node 16/18/20
# binaries only.
ARG NODE_IMAGE=node:20-bookworm-slim

# Manifests first, so the dependency layers are cached until a package.json changes.
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
RUN npm ci --no-audit --no-fund --ignore-scripts

FROM deps AS build
COPY tsconfig.json tsconfig.base.json ./
COPY services services
RUN npx tsc -b

# Production dependencies only: no TypeScript, test tools or embedded Postgres.
FROM manifests AS prod-deps
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force

# Tilt's live_update target: full toolchain, sources synced in, `tsc -b` re-run on change and
# `node --watch` (set by the dev values) restarting the service on new output.
FROM build AS dev
COPY web web
ENV NODE_ENV=development
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
