#!/usr/bin/env bash
# Vendor the JavaScript the book's pages need (MathJax, require.js, the ipywidgets HTML
# manager) from the npm registry into DEST, so built pages load nothing from a CDN.
set -euo pipefail
dest=${1:?usage: vendor_js.sh DEST}
[ -f "$dest/.complete" ] && exit 0
if ! command -v npm >/dev/null; then
  echo "vendor_js.sh: npm is not on the PATH. The book's pages load MathJax, require.js and the widget" >&2
  echo "manager from $dest, fetched once with 'npm pack': install Node.js and npm (Debian: apt-get install npm)." >&2
  exit 2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent mathjax@3.2.2 @jupyter-widgets/html-manager@1.0.6 requirejs@2.3.7 >/dev/null)
rm -rf "$dest" && mkdir -p "$dest"
for pkg in mathjax:mathjax-3.2.2.tgz html-manager:jupyter-widgets-html-manager-1.0.6.tgz requirejs:requirejs-2.3.7.tgz; do
  mkdir -p "$dest/${pkg%%:*}"
  tar -xzf "$tmp/${pkg#*:}" -C "$dest/${pkg%%:*}" --strip-components=1
done
rm -rf "$dest/html-manager/lib" "$dest/requirejs/bin"  # sources and CLI: not served
touch "$dest/.complete"
