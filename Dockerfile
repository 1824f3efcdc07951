# shardline: GraphQL on port 4000; set DATABASE_URL for Postgres (docker-compose.yml does).
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
# patches/ holds fixes to dependencies, applied by patch-package at install (see the patch files).
COPY patches ./patches
RUN npm ci --omit=dev --no-audit --no-fund
COPY api ./api
COPY engine ./engine
COPY migrations ./migrations
# The dashboard (served at /) and the shardline command (docker compose exec shardline shardline …).
COPY web ./web
COPY bin ./bin
COPY cli ./cli
RUN ln -s /app/bin/shardline /usr/local/bin/shardline
# /data holds the embedded database when DATABASE_URL is unset (mount a volume there to keep it
# across containers); /app/functions, module functions (mount a directory there,
# SHARDLINE_FUNCTIONS_DIR's default).
ENV NODE_ENV=production HOST=0.0.0.0 PORT=4000 SHARDLINE_DATA_DIR=/data
RUN mkdir -p /data /app/functions && chown node:node /data
EXPOSE 4000
USER node
CMD ["node", "--max-semi-space-size=64", "--import", "tsx", "api/server.ts"]
