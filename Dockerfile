# The status-stream sidecar image: a Node >= 24 base plus the source, nothing else.
# Node >= 22.18 strips the types itself and there are no runtime dependencies, so there is
# no npm install and no build stage. Deployment and volumes: docs/deployment.md.
#
# The base is a build argument so that it can be swapped (scripts/image-check.sh builds on
# a locally made Node 24 base where no registry answers).
ARG NODE_IMAGE=node:24-alpine
FROM ${NODE_IMAGE}

LABEL org.opencontainers.image.title="status-stream" \
      org.opencontainers.image.description="Streams a service's live status to browsers over Server-Sent Events"

# HOST 0.0.0.0 so that `docker run -p` and the kubelet (which probes the pod IP) reach it;
# the HEALTHCHECK below reads HOST and PORT. NODE_ENV: nothing may run in a dev mode here.
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080

# 2 MiB semi-spaces: less memory per stream with thousands open, given back after they
# leave (bench/README.md). `npm start` passes the same flag.
ENV NODE_OPTIONS=--max-semi-space-size=2

# Where STATE_DIR can point: owned by node, empty in the image. Mount a volume here and set
# STATE_DIR=/var/lib/status-stream to keep history across restarts; a new named volume
# takes this directory's owner. Not set by default: the service must also run with
# readOnlyRootFilesystem and no volume.
RUN mkdir -p -m 750 /var/lib/status-stream && chown node:node /var/lib/status-stream

# The context holds only runtime files (.dockerignore): package.json (its "type": "module" makes the
# .ts files ES modules, and the version comes from it), the *.ts modules and page.html.
# Owned by root: the node user can read the code, not change it.
WORKDIR /app
COPY . .

# The official Node images' unprivileged user, uid 1000 (deploy/kubernetes.yaml sets
# runAsUser: 1000, as runAsNonRoot cannot check a user given by name).
USER node

EXPOSE 8080

# Node itself probes (no curl or wget in the image), at $PORT: on loopback when HOST is a
# wildcard, else at HOST. https://docs.docker.com/reference/dockerfile/#healthcheck
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "const h=process.env.HOST||'0.0.0.0',a=h==='0.0.0.0'||h==='::'?'127.0.0.1':h.includes(':')?'['+h+']':h;fetch('http://'+a+':'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# Exec form: node is PID 1 and gets docker stop's SIGTERM itself (streams get `event: done`,
# exit 0). A shell or npm in between would swallow it. No init needed: no child processes.
CMD ["node", "server.ts"]
