#!/usr/bin/env bash
# Assembles the build context of the test cluster's PostgreSQL image (see
# Containerfile) from this machine's files: Debian's postgresql-15 (the
# server programs, their modules and share files), the official postgres
# image's entrypoint scripts as they are, read from OFFICIAL, and what
# those scripts run: bash, getent and locale (initdb lists the locales for
# its collations) with every shared library (found with ldd), and
# busybox-static for the rest (initdb and pg_ctl start programs through
# sh). Usage: rootfs.sh OFFICIAL OUTDIR
set -euo pipefail
official=${1:?usage: rootfs.sh OFFICIAL OUTDIR}
out=${2:?usage: rootfs.sh OFFICIAL OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
pg=/usr/lib/postgresql/15
die() { echo "rootfs.sh: $*" >&2; exit 1; }

for f in docker-entrypoint.sh docker-ensure-initdb.sh; do
  [[ -f $official/$f ]] || die "no $official/$f: the official postgres image's entrypoint (docker-library/postgres, 15/bookworm) is required, unmodified"
done
[[ -x $pg/bin/postgres ]] || die "no $pg/bin/postgres: apt-get install postgresql-15"
command -v busybox >/dev/null || die "no busybox: apt-get install busybox-static"
busybox=$(command -v busybox)
[[ $(ldd "$busybox" 2>&1) == *"not a dynamic executable"* ]] || die "$busybox is not static: apt-get install busybox-static"

rm -rf "$out"
r=$out/rootfs
mkdir -p "$r"/{etc,tmp,var/run,var/lib,docker-entrypoint-initdb.d} "$r"/usr/{bin,sbin,lib,lib64,local/bin} \
  "$r$pg/bin" "$r$pg/lib" "$r/usr/share/postgresql" "$r/usr/share/zoneinfo/Etc" "$r/usr/lib/locale"
# Debian's merged /usr, as in the official image.
for d in bin sbin lib lib64; do ln -s "usr/$d" "$r/$d"; done
chmod 1777 "$r/tmp"

# PostgreSQL: the programs the entrypoint and the probes run, every module
# but the JIT (LLVM would add 100 MB; the StatefulSet sets jit=off), the
# share files, UTC and the C.UTF-8 locale.
for p in postgres initdb pg_ctl psql pg_isready; do cp -L "$pg/bin/$p" "$r$pg/bin/"; done
ln -s postgres "$r$pg/bin/postmaster"
find "$pg/lib" -maxdepth 1 -name '*.so' ! -name 'llvmjit*' -exec cp -L {} "$r$pg/lib/" \;
cp -a /usr/share/postgresql/15 "$r/usr/share/postgresql/"
rm -rf "$r/usr/share/postgresql/15/man"
cp -L /usr/share/zoneinfo/UTC "$r/usr/share/zoneinfo/UTC"
cp -L /usr/share/zoneinfo/Etc/UTC "$r/usr/share/zoneinfo/Etc/UTC"
cp -a /usr/lib/locale/C.utf8 "$r/usr/lib/locale/"
# The official Dockerfile's one change to the sample configuration, which
# initdb copies into PGDATA: listen on every address, not localhost only.
sample=$r/usr/share/postgresql/15/postgresql.conf.sample
sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" "$sample"
grep -qF "listen_addresses = '*'" "$sample" || die "could not set listen_addresses in $sample"

# The entrypoint, unmodified, where the official image installs it.
install -m 0755 "$official/docker-entrypoint.sh" "$official/docker-ensure-initdb.sh" "$r/usr/local/bin/"
ln -s docker-ensure-initdb.sh "$r/usr/local/bin/docker-enforce-initdb.sh"

# What the entrypoint runs besides PostgreSQL: bash (its interpreter, found
# by env), Debian's getent and locale, and busybox applets for the rest.
for p in bash getent locale; do cp -L "$(command -v "$p")" "$r/usr/bin/$p"; done
cp "$busybox" "$r/usr/bin/busybox"
for a in sh env id mkdir chmod chown find ls cat rm mktemp basename gunzip xzcat; do
  ln -s busybox "$r/usr/bin/$a"
done

# The shared libraries of every dynamic program and module, at the same paths.
for f in "$r$pg"/bin/* "$r$pg"/lib/*.so "$r"/usr/bin/{bash,getent,locale}; do
  [[ -L $f ]] && continue
  ldd "$f" 2>/dev/null | awk '/=>/ {print $3} /^\t\// {print $1}'
done | sort -u | while read -r lib; do
  [[ -f $lib ]] || continue
  mkdir -p "$r$(dirname "$lib")"
  cp -L "$lib" "$r$lib"
done

# The official image's postgres user and group, UID and GID 999.
printf 'root:x:0:0:root:/root:/bin/bash\npostgres:x:999:999::/var/lib/postgresql:/bin/bash\n' >"$r/etc/passwd"
printf 'root:x:0:\npostgres:x:999:\n' >"$r/etc/group"
printf 'passwd: files\ngroup: files\n' >"$r/etc/nsswitch.conf"

# The directories the Containerfile gives to the postgres user.
mkdir -p "$out/run/postgresql" "$out/lib/postgresql/data"
cp "$here/Containerfile" "$out/Containerfile"
echo "rootfs.sh: $(du -sh "$r" | cut -f1) in $r"
