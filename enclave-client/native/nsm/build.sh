#!/usr/bin/env bash
# Builds nsm.node. Uses the node-gyp bundled with npm and the Node headers the Debian nodejs
# package installs in /usr/include/node, so no header download is needed. Needs make, a C
# compiler and python3. Run inside this folder's parent checkout: enclave-client/native/nsm/build.sh
set -euo pipefail
cd "$(dirname "$0")"
gyp="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
args=(rebuild)
[ -f /usr/include/node/node_api.h ] && args+=(--nodedir=/usr)
if [ -f "$gyp" ]; then node "$gyp" "${args[@]}"; else npx --yes node-gyp "${args[@]}"; fi
