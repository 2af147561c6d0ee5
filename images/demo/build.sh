#!/usr/bin/env bash
# Builds the demo image's root filesystem, offline, from the Debian packages that
# `make setup` downloaded: build.sh DEBS_DIR OUT_TAR. The result is imported as
# localhost/kaisar/demo:latest (Docker Engine API: POST /images/create?fromSrc=-).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
debs="$1"
out="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root"
while read -r pkg; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  deb=$(ls "$debs"/"${pkg}"_*.deb 2>/dev/null | head -n 1 || true)
  [[ -n "$deb" ]] || { echo "images/demo: $pkg is not in $debs; run make setup" >&2; exit 1; }
  dpkg-deb -x "$deb" "$root"
done < "$here/packages.txt"
rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/locale" "$root/usr/share/lintian"
# busybox provides the shell and the tools.
for applet in $("$root/bin/busybox" --list); do
  [[ -e "$root/bin/$applet" || -e "$root/usr/bin/$applet" || -e "$root/usr/sbin/$applet" ]] || ln -s busybox "$root/bin/$applet"
done
mkdir -p "$root/etc" "$root/root" "$root/tmp" "$root/www" "$root/etc/dropbear" "$root/var/log"
chmod 1777 "$root/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
printf 'root:*:19000:0:99999:7:::\n' > "$root/etc/shadow"
printf 'root:x:0:\n' > "$root/etc/group"
printf '/bin/sh\n' > "$root/etc/shells"
install -m 0755 "$here/init.sh" "$root/init.sh"
tar --owner=0 --group=0 --numeric-owner -C "$root" -cf "$out.tmp" .
mv "$out.tmp" "$out"
echo "demo image rootfs: $out ($(du -h "$out" | cut -f1))"
