#!/usr/bin/env bash
# Assembles the root filesystem of a FROM-scratch runtime image: BINARY at /usr/local/bin/NAME,
# every shared library `ldd BINARY` resolves (the dynamic loader included) at its own path, the
# Debian copyright file of each package owning one, /etc/passwd and /etc/group with uid/gid 65532
# (nonroot) and 0 (root), an empty /tmp (mode 1777), and the CA bundle when it exists.
# The Dockerfile's builder stage runs it; tests/integration/deploy/test_docker.py runs it on the
# host's build and runs the result in a chroot as uid 65532.
#
# Usage: scripts/images/runtime-rootfs.sh BINARY DESTDIR
set -euo pipefail

[[ $# -eq 2 ]] || {
  echo "usage: $0 BINARY DESTDIR" >&2
  exit 2
}
bin="$1"
dest="$2"
[[ -x "$bin" ]] || {
  echo "runtime-rootfs: $bin is not an executable" >&2
  exit 1
}

mkdir -p "$dest/usr/local/bin" "$dest/usr/lib" "$dest/etc/ssl/certs" "$dest/tmp"
chmod 1777 "$dest/tmp"
# The merged-/usr layout of Debian bookworm: /lib and /lib64 are links into /usr, so a library
# is found under the path ldd printed and under its real one.
for d in lib lib64; do
  [[ -e "$dest/$d" ]] || ln -s "usr/$d" "$dest/$d"
done
cp "$bin" "$dest/usr/local/bin/$(basename "$bin")"

libs=()
while read -r line; do
  case "$line" in
    *"not found"*)
      echo "runtime-rootfs: ldd $bin: $line" >&2
      exit 1
      ;;
    *" => /"*) lib=${line#* => } ;;
    /*) lib=$line ;;
    *) continue ;; # linux-vdso: the kernel's
  esac
  libs+=("${lib%% (*}")
done < <(ldd "$bin")
[[ ${#libs[@]} -gt 0 ]] || {
  echo "runtime-rootfs: ldd lists no library for $bin (a static binary needs no rootfs script)" >&2
  exit 1
}

pkgs=()
for lib in "${libs[@]}"; do
  # Into the real directory of the path ldd printed (/lib/x86_64-linux-gnu -> /usr/lib/...),
  # under the name ldd printed (the SONAME), with the content of the file it resolves to.
  dir=$(realpath "$(dirname "$lib")")
  mkdir -p "$dest$dir"
  cp -L "$lib" "$dest$dir/$(basename "$lib")"
  if command -v dpkg >/dev/null; then
    pkg=$( (dpkg -S "$lib" || dpkg -S "$(realpath "$lib")" || dpkg -S "/usr$lib") 2>/dev/null | head -n1 | cut -d: -f1)
    [[ -n "$pkg" ]] && pkgs+=("$pkg")
  fi
done
for pkg in $(printf '%s\n' "${pkgs[@]}" | sort -u); do
  if [[ -f "/usr/share/doc/$pkg/copyright" ]]; then
    mkdir -p "$dest/usr/share/doc/$pkg"
    cp "/usr/share/doc/$pkg/copyright" "$dest/usr/share/doc/$pkg/"
  fi
done

cat >"$dest/etc/passwd" <<'PW'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PW
cat >"$dest/etc/group" <<'GR'
root:x:0:
nonroot:x:65532:
GR
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
  cp /etc/ssl/certs/ca-certificates.crt "$dest/etc/ssl/certs/"
fi
echo "runtime-rootfs: $dest: $(basename "$bin") + ${#libs[@]} libraries ($(du -sh "$dest" | cut -f1))" >&2
