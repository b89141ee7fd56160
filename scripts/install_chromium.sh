#!/usr/bin/env bash
# Puts Debian's chromium into .cache/chromium/ for the browser check of the built book
# (scripts/check_book.py), without installing anything system-wide and without root.
#
# The .deb files of chromium and of the shared libraries it needs that the system lacks are
# fetched with `apt-get download` and unpacked with `dpkg-deb -x` into .cache/chromium/root.
# A wrapper .cache/chromium/chromium sets LD_LIBRARY_PATH and runs the unpacked binary.
# The script checks with ldd that every library resolves and fails naming the missing ones.
# Running it again when the wrapper works does nothing but print the wrapper's path.
#
# Usage: bash scripts/install_chromium.sh        (prints the wrapper path on its last line)
set -euo pipefail
cd "$(dirname "$0")/.."

dest="$PWD/.cache/chromium"
root="$dest/root"
debs="$dest/debs"
wrapper="$dest/chromium"
binary="$root/usr/lib/chromium/chromium"
libdir="$root/usr/lib/x86_64-linux-gnu"

# chromium itself, then the libraries a slim Debian 12 image lacks (found with ldd).
PACKAGES=(chromium chromium-common
  libopenh264-7 libdouble-conversion3 libharfbuzz-subset0 libpulse0 libflac12 libopus0
  libxnvctrl0 libminizip1 libopenjp2-7 libasyncns0 libsndfile1 libvorbisenc2 libogg0
  libvorbis0a libmpg123-0 libmp3lame0)

die() { echo "install_chromium: $*" >&2; exit 1; }

missing_libs() {
  # Prints the libraries ldd cannot resolve for the chromium binary (nothing when all resolve).
  LD_LIBRARY_PATH="$libdir:$libdir/pulseaudio" ldd "$binary" 2>/dev/null | awk '/not found/ {print $1}' | sort -u
}

write_wrapper() {
  cat > "$wrapper.tmp" <<EOF
#!/usr/bin/env bash
# Runs the chromium unpacked by scripts/install_chromium.sh with its private libraries.
here="\$(cd "\$(dirname "\${BASH_SOURCE[0]}")" && pwd)"
export LD_LIBRARY_PATH="\$here/root/usr/lib/x86_64-linux-gnu:\$here/root/usr/lib/x86_64-linux-gnu/pulseaudio\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
exec "\$here/root/usr/lib/chromium/chromium" "\$@"
EOF
  chmod +x "$wrapper.tmp"
  mv "$wrapper.tmp" "$wrapper"
}

command -v ldd >/dev/null || die "ldd is needed to check the unpacked libraries"

# Already installed and complete: nothing to do.
if [ -x "$binary" ] && [ -z "$(missing_libs)" ]; then
  [ -x "$wrapper" ] || write_wrapper
  echo "$wrapper"
  exit 0
fi

command -v apt-get >/dev/null || die "apt-get is needed (this script unpacks Debian packages)"
command -v dpkg-deb >/dev/null || die "dpkg-deb is needed (this script unpacks Debian packages)"

mkdir -p "$debs" "$root"
for pkg in "${PACKAGES[@]}"; do
  if ls "$debs/${pkg}"_*.deb >/dev/null 2>&1; then
    continue
  fi
  if ! (cd "$debs" && apt-get download "$pkg" >/dev/null 2>"$debs/apt.err"); then
    if [ "$(id -u)" = 0 ] && [ -z "${INSTALL_CHROMIUM_UPDATED:-}" ]; then
      echo "install_chromium: apt-get download $pkg failed; refreshing the package lists" >&2
      apt-get update -qq || die "apt-get update failed"
      INSTALL_CHROMIUM_UPDATED=1
      (cd "$debs" && apt-get download "$pkg" >/dev/null 2>"$debs/apt.err") \
        || die "apt-get download $pkg failed after apt-get update: $(cat "$debs/apt.err")"
    else
      die "apt-get download $pkg failed: $(cat "$debs/apt.err")
The package lists may be missing; ask an administrator to run 'apt-get update' and retry."
    fi
  fi
done
rm -f "$debs/apt.err"

for deb in "$debs"/*.deb; do
  dpkg-deb -x "$deb" "$root" || die "dpkg-deb -x failed on $deb"
done

[ -x "$binary" ] || die "no chromium binary at $binary after unpacking"
missing="$(missing_libs)"
if [ -n "$missing" ]; then
  die "chromium still lacks these shared libraries (find their Debian packages and add them to
PACKAGES in scripts/install_chromium.sh):
$missing"
fi

write_wrapper
"$wrapper" --version >&2 || die "the unpacked chromium does not start"
echo "$wrapper"
