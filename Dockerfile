# The status-stream sidecar image (SPEC §10).
#
# Node >= 22.18 runs TypeScript by stripping the types itself, and the service
# has no runtime dependencies, so the image is the Node base image plus the
# source files: no npm install, no build stage, no node_modules.
#
# The base image is a build argument so it can be swapped: an official Node >= 24
# image by default; CI builds against a locally made Node 24 base because no
# registry can be reached there (../shared/tools/docker-check.sh).
ARG NODE_IMAGE=node:24-alpine
FROM ${NODE_IMAGE}

LABEL org.opencontainers.image.title="status-stream" \
      org.opencontainers.image.description="Streams a service's live status to browsers over Server-Sent Events"

# HOST/PORT are the defaults of SPEC §2, written out because the HEALTHCHECK
# and EXPOSE below depend on them. 0.0.0.0 lets `docker run -p` and the
# Kubernetes kubelet (which probes the pod IP) reach the service.
# NODE_ENV: no code reads it today; set so that nothing ever runs in a
# development mode inside the image.
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080

# V8's young generation grows to two 16 MiB semi-spaces while thousands of streams
# connect, and keeps them: 32 MiB, 3 KiB of RSS per stream at 10,000 streams. 2 MiB
# semi-spaces are enough since broadcasts go out in slices (sse.ts), and V8 then gives
# the memory back after the clients leave. `npm run bench` at 10,000 streams on Node 20:
# 12.5 -> 8.9 KiB per stream, RSS near the start again 13 s after the clients left
# (README, "Performance"). `npm start` passes the same flag.
ENV NODE_OPTIONS=--max-semi-space-size=2

WORKDIR /app

# An explicit list instead of `COPY . .`: only what `node server.ts` loads gets
# in, so tests/, bench/, coverage and local .env files stay out even when
# .dockerignore misses one. package.json is a runtime file: its "type": "module"
# makes the .ts files ES modules, and the server reports its version from it.
# A new top-level module must be added here; docker-check catches a missing one
# (the container then fails to start and /healthz never answers).
# Owned by root (and /app too): the node user can read the code, not change it.
COPY --chown=root:root package.json server.ts sse.ts status.ts config.ts log.ts metrics.ts page.html ./

# The official Node images' unprivileged user (uid 1000). Kubernetes'
# runAsNonRoot cannot verify a user given by name, so deploy/kubernetes.yaml
# sets runAsUser: 1000 as well.
USER node

EXPOSE 8080

# Node itself does the probe (the image needs no curl or wget). It asks the
# port the service really listens on ($PORT, not the EXPOSEd 8080), on loopback
# when HOST is a wildcard (0.0.0.0, or :: which also accepts IPv4 on Linux),
# else on HOST itself (e.g. HOST=127.0.0.1 or ::1). PORT=0 (a random port) cannot
# be probed: don't use it in a container. A probe that hangs is killed and
# counted as a failure after --timeout.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "const h=process.env.HOST||'0.0.0.0',a=h==='0.0.0.0'||h==='::'?'127.0.0.1':h.includes(':')?'['+h+']':h;fetch('http://'+a+':'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# Exec form, node as PID 1: `docker stop` sends SIGTERM to node itself, and the
# server handles it (streams get `event: done`, exit 0 in well under a second;
# SPEC §7). `npm start` or a shell form would sit in between and swallow it, and
# docker would SIGKILL after 10 s. No init (tini) is needed: the service starts
# no child processes, so there are no zombies to reap. STOPSIGNAL stays SIGTERM.
CMD ["node", "server.ts"]
