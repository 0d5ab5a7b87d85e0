# lifeboat worker image (docker-compose.yml's lifeboat-worker service; docs/docker.md).
# Only the files the build needs are copied: never `COPY . .`, which would take
# .stack/ (secrets, database files) into the image.
#
#   docker build -t lifeboat .
#   docker run --rm lifeboat --help              # any lifeboat command; the default is `worker`

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
# The client tools of every supported PostgreSQL major, from the PostgreSQL
# project's apt repository (PGDG; Debian itself has only 15): lifeboat picks
# the newest /usr/lib/postgresql/N/bin, and pg_dump reads servers of its own
# major and older. pgBackRest (PITR) comes from PGDG too; age, zstd,
# redis-cli and the InfluxDB 1.x client from Debian. tini reaps children and
# passes signals on, so `docker stop` lets a running dump finish or hand over.
ARG PG_MAJORS="15 16 17"
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-common \
 && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y \
 && apt-get install -y --no-install-recommends \
      $(for v in $PG_MAJORS; do echo "postgresql-client-$v"; done) \
      pgbackrest age zstd redis-tools influxdb-client tini \
 && rm -rf /var/lib/apt/lists/* \
 && for v in $PG_MAJORS; do /usr/lib/postgresql/$v/bin/pg_dump --version; done
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
ENV NODE_ENV=production
# The image's own unprivileged user (uid 1000); docker-compose.yml runs it as the owner of the secret files.
USER node
# With `metrics:` in the config, healthy means the worker answers its Prometheus endpoint
# with the Temporal SDK's metrics in it; without, a running worker counts as healthy.
HEALTHCHECK --interval=30s --timeout=15s --start-period=60s --retries=3 CMD ["node", "/app/dist/cli/healthcheck.js"]
ENTRYPOINT ["tini", "--", "node", "/app/bin/lifeboat"]
CMD ["worker"]
