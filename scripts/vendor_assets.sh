#!/usr/bin/env bash
# Puts the browser assets the book needs into _assets/vendor/ so the built pages work offline.
# MathJax comes from the npm registry as a pinned package; nothing is fetched when a page is read.
set -euo pipefail
cd "$(dirname "$0")/.."
MATHJAX_VERSION=3.2.2
dest=_assets/vendor/mathjax
stamp="$dest/.version"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$MATHJAX_VERSION" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "vendor_assets: npm is needed to fetch MathJax $MATHJAX_VERSION" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "mathjax@$MATHJAX_VERSION" >/dev/null)
tar -xzf "$tmp"/mathjax-*.tgz -C "$tmp"
rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
# The CommonHTML component, its TeX input and the fonts it loads at run time.
cp "$tmp/package/es5/tex-chtml.js" "$dest.tmp/"
mkdir -p "$dest.tmp/output/chtml"
cp -r "$tmp/package/es5/output/chtml/fonts" "$dest.tmp/output/chtml/"
mkdir -p "$dest.tmp/input/tex"
cp -r "$tmp/package/es5/input/tex/extensions" "$dest.tmp/input/tex/"
cp -r "$tmp/package/es5/a11y" "$tmp/package/es5/ui" "$tmp/package/es5/sre" "$dest.tmp/" 2>/dev/null || true
cp "$tmp/package/LICENSE" "$dest.tmp/"
echo "$MATHJAX_VERSION" > "$dest.tmp/.version"
rm -rf "$dest" && mv "$dest.tmp" "$dest"
echo "vendor_assets: MathJax $MATHJAX_VERSION in $dest"
