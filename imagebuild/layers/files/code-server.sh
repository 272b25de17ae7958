#!/bin/sh
# code-server built from npm, always on the Node it was built with: its native modules
# match that Node's ABI, and a user's PATH (mise's node, say) must not change it.
exec /opt/node/bin/node /opt/code-server/lib/node_modules/code-server "$@"
