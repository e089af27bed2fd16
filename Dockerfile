# walstream: multi-stage build; the runtime image runs `walstream start` as a non-root user.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY actors ./actors
COPY runtime ./runtime
COPY storage ./storage
COPY config ./config
COPY test/tools ./test/tools
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    WALSTREAM_DATA_DIR=/data \
    WALSTREAM_HTTP__HOST=0.0.0.0
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8480
ENTRYPOINT ["node", "dist/runtime/cli/main.js"]
CMD ["start"]
