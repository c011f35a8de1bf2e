#!/bin/sh
# Builds bpf/*.bpf.c into objects and libbpf skeleton headers in OUTDIR (default build/bpf).
# vmlinux.h is generated from the running kernel's BTF, so the programs see this kernel's
# struct layouts; CO-RE relocations keep the objects portable to other kernels.
set -eu
SRC=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$SRC/../build/bpf}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$SRC"
if ! bpftool btf dump file /sys/kernel/btf/vmlinux format c > "$OUT/vmlinux.h.tmp"; then
  echo "bpf/build.sh: cannot read /sys/kernel/btf/vmlinux (kernel built without BTF?)" >&2
  exit 1
fi
# Replace only when changed, so make does not rebuild everything that includes it.
if cmp -s "$OUT/vmlinux.h.tmp" "$OUT/vmlinux.h"; then rm "$OUT/vmlinux.h.tmp"; else mv "$OUT/vmlinux.h.tmp" "$OUT/vmlinux.h"; fi
case "$(uname -m)" in
  x86_64) ARCH=x86 ;; aarch64) ARCH=arm64 ;; *) ARCH=$(uname -m) ;;
esac
# sockops last: sockops.skel.h is the output make watches, so it must be written last.
for prog in redirect capture sockops; do
  clang -target bpf -g -O2 -Wall -D__TARGET_ARCH_$ARCH -I"$OUT" -I. -c "$prog.bpf.c" -o "$OUT/$prog.bpf.o"
  bpftool gen skeleton "$OUT/$prog.bpf.o" name "strait_$prog" > "$OUT/$prog.skel.h.tmp"
  mv "$OUT/$prog.skel.h.tmp" "$OUT/$prog.skel.h"
done
