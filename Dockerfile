# lifeboat worker image (used by docker-compose.yml's lifeboat-worker service).
# Only the files the build needs are copied: never `COPY . .`, which would take
# .stack/ (secrets, database files) into the image.

FROM node:20-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
# pg_dump/pg_restore 15 for the postgres store, from Debian bookworm.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-15 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
ENV NODE_ENV=production
USER node
CMD ["node", "dist/cli/main.js", "worker"]
