#!/bin/sh
# Prints 1 when this machine can build the BPF programs and their libbpf loader, else 0.
# binding.gyp reads it at configure time: without the toolchain the addon still builds and
# reports BPF as unavailable. STRAIT_BPF=0 forces the stub build.
[ "${STRAIT_BPF:-}" = "0" ] && { echo 0; exit 0; }
for tool in clang bpftool; do
  command -v "$tool" >/dev/null 2>&1 || { echo 0; exit 0; }
done
for h in /usr/include/bpf/libbpf.h /usr/include/gelf.h /sys/kernel/btf/vmlinux; do
  [ -r "$h" ] || { echo 0; exit 0; }
done
echo 1
