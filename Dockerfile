# fmsg-webapi container: build the single binary with Bun, run it on a minimal glibc base as non-root.
# Build: docker build -t fmsg-webapi .
# Run:   docker run -p 8000:8000 -v fmsg-data:/data fmsg-webapi          (embedded default)
#        docker run -p 8000:8000 -v /srv/fmsg:/srv/fmsg --env-file fmsg.env fmsg-webapi   (next to fmsgd)

FROM oven/bun:1.4.5 AS build
WORKDIR /src
COPY package.json bun.lock ./
COPY patches ./patches
# package.json's postinstall (it checks that the patches are in place).
COPY scripts/ensure-patches.ts ./scripts/
RUN bun install --frozen-lockfile
COPY tsconfig.json bunfig.toml ./
COPY sql ./sql
COPY src ./src
RUN bun run build && mkdir -p /out/data

# distroless/base: glibc (the Bun binary needs it; static/scratch images cannot start it), no shell, no package manager.
FROM gcr.io/distroless/base-debian12:nonroot
ENV NODE_ENV=production \
    FMSG_API_PORT=8000
WORKDIR /data
COPY --from=build --chown=nonroot:nonroot /src/dist/fmsg-webapi /app/fmsg-webapi
# An empty /data owned by the runtime user, so a fresh named volume is writable.
COPY --from=build --chown=nonroot:nonroot /out/data /data
USER nonroot
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD ["/app/fmsg-webapi", "healthcheck"]
# The binary is PID 1 and handles SIGTERM itself: open waits answer 204, requests drain, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/fmsg-webapi"]
CMD ["serve"]
