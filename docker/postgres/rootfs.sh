#!/usr/bin/env bash
# Assembles the root filesystem of an offline PostgreSQL image from this
# machine's Debian postgresql-15 and busybox-static packages: the server
# programs, their shared libraries (found with ldd), the share files, a
# shell for initdb (it starts the backend through popen) and the entrypoint.
# The result runs the manifests' StatefulSet unchanged where no registry
# can serve the official image. Usage: rootfs.sh OUTDIR
set -euo pipefail
out=${1:?usage: rootfs.sh OUTDIR}
pg=/usr/lib/postgresql/15
here=$(cd "$(dirname "$0")" && pwd)
[[ -x $pg/bin/postgres ]] || { echo "rootfs.sh: no $pg/bin/postgres: apt-get install postgresql-15" >&2; exit 1; }
[[ -x /bin/busybox || -x /usr/bin/busybox ]] || { echo "rootfs.sh: no busybox: apt-get install busybox-static" >&2; exit 1; }
busybox=$(command -v busybox)

rm -rf "$out"
mkdir -p "$out"/{bin,etc,tmp,var/run/postgresql,var/lib/postgresql/data} "$out$pg/bin" "$out$pg/lib" "$out/usr/share/zoneinfo/Etc"
chmod 1777 "$out/tmp"

progs=(postgres initdb pg_isready psql pg_ctl)
for p in "${progs[@]}"; do cp -L "$pg/bin/$p" "$out$pg/bin/"; done
ln -s postgres "$out$pg/bin/postmaster"
# Every module but the JIT, which would pull in 100 MB of LLVM (jit=off).
find "$pg/lib" -maxdepth 1 -name '*.so' ! -name 'llvmjit*' -exec cp -L {} "$out$pg/lib/" \;
mkdir -p "$out/usr/share/postgresql"
cp -a /usr/share/postgresql/15 "$out/usr/share/postgresql/"
rm -rf "$out/usr/share/postgresql/15/man"
cp -L /usr/share/zoneinfo/UTC "$out/usr/share/zoneinfo/UTC"
cp -L /usr/share/zoneinfo/Etc/UTC "$out/usr/share/zoneinfo/Etc/UTC"

# The shared libraries all of it needs, at the same paths.
for f in "$out$pg"/bin/* "$out$pg"/lib/*.so; do
  [[ -L $f ]] && continue
  ldd "$f" 2>/dev/null | awk '/=>/ {print $3} /^\t\// {print $1}'
done | sort -u | while read -r lib; do
  [[ -f $lib ]] || continue
  mkdir -p "$out$(dirname "$lib")"
  cp -L "$lib" "$out$lib"
done

cp "$busybox" "$out/bin/busybox"
for applet in sh mkdir chmod rm printf cat; do ln -s busybox "$out/bin/$applet"; done
install -m 0755 "$here/entrypoint.sh" "$out/docker-entrypoint.sh"
printf 'root:x:0:0:root:/root:/sbin/nologin\npostgres:x:999:999:postgres:/var/lib/postgresql:/bin/sh\n' > "$out/etc/passwd"
printf 'root:x:0:\npostgres:x:999:\n' > "$out/etc/group"
printf 'passwd: files\ngroup: files\n' > "$out/etc/nsswitch.conf"
echo "rootfs.sh: $(du -sh "$out" | cut -f1) in $out"
