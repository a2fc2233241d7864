#!/bin/sh
# Builds the smoke kernel, wraps it in a GRUB ISO and runs it under QEMU TCG with SVM.
# Exit status 0 when the kernel printed SVM-SMOKE: PASS (isa-debug-exit status 33).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
target=${CARGO_TARGET_DIR:-/tmp/svm-qemu-smoke-target}
cd "$here"
RUSTFLAGS="-C relocation-model=static" CARGO_TARGET_DIR="$target" \
    cargo build --release --target x86_64-unknown-none --offline
work=$(mktemp -d)
mkdir -p "$work/iso/boot/grub"
cp "$target/x86_64-unknown-none/release/svm-qemu-smoke" "$work/iso/boot/kernel"
cat > "$work/iso/boot/grub/grub.cfg" <<'CFG'
set timeout=0
serial --unit=0 --speed=115200
terminal_output serial
menuentry "svm-smoke" { multiboot2 /boot/kernel }
CFG
grub-mkrescue -o "$work/smoke.iso" "$work/iso" >/dev/null 2>&1
status=0
timeout 120 qemu-system-x86_64 -cpu max -m 1G -cdrom "$work/smoke.iso" -serial "file:$work/serial.log" \
    -display none -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 || status=$?
grep -a -E "svm-smoke|SVM-SMOKE|PANIC" "$work/serial.log" || true
rm -rf "$work"
[ "$status" -eq 33 ]
