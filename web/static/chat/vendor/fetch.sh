#!/usr/bin/env bash
# Re-creates this folder's vendored files from the npm registry (`npm pack`, no install, no
# build): each file is copied byte for byte from the published package, renamed to `.js` where
# it was `.mjs` so that every static file server sends it as JavaScript.
# Run it after changing a version below, then update README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

unpack() {  # unpack NAME@VERSION DIR
  mkdir -p "$2"
  tar xzf "$(npm pack --silent "$1")" -C "$2" --strip-components=1
}
unpack preact@11.2.0 preact
unpack htm@3.1.1 htm
unpack graphql-ws@6.4.2 graphql-ws
unpack marked@18.2.1 marked
unpack dompurify@3.5.0 dompurify

rm -rf "${here:?}"/{preact,htm,graphql-ws,marked,dompurify}
mkdir -p "$here"/{preact,htm,graphql-ws,marked,dompurify}
cp preact/dist/preact.mjs "$here/preact/preact.js"
cp preact/hooks/dist/hooks.mjs "$here/preact/hooks.js"
cp preact/LICENSE "$here/preact/LICENSE"
cp htm/dist/htm.mjs "$here/htm/htm.js"
cp htm/LICENSE "$here/htm/LICENSE"
# The client imports its shared half by this hashed name: keep it.
cp graphql-ws/dist/client.js graphql-ws/dist/common-*.js "$here/graphql-ws/"
cp graphql-ws/LICENSE.md "$here/graphql-ws/LICENSE.md"
cp marked/lib/marked.esm.js "$here/marked/marked.esm.js"
cp marked/LICENSE "$here/marked/LICENSE"
cp dompurify/dist/purify.es.mjs "$here/dompurify/purify.es.js"
cp dompurify/LICENSE dompurify/LICENSE-MPL "$here/dompurify/"
(cd "$here" && sha256sum -- */*.js)
