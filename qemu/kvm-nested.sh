#!/usr/bin/env bash
# Boot a probevisor ISO under QEMU/KVM with nested VT-x (the hypervisor runs as an L1 guest and
# needs VMX inside it). Before starting QEMU it checks what that needs and, when something is
# missing, says so and exits with a code of its own:
#
#   0   checks passed (--check), or the run ended with PROBEVISOR-DONE status=ok (QEMU exit 33)
#   1   the run ended otherwise (another QEMU exit status, or the timeout)
#   2   usage error
#   3   the ISO does not exist
#   10  /dev/kvm is missing
#   11  /dev/kvm is not accessible (not a character device, or not readable and writable)
#   12  the CPU is not Intel (vendor_id is not GenuineIntel)
#   13  the CPU has no vmx flag (VT-x absent, or hidden from this machine)
#   14  nested VT-x is off (kvm_intel's `nested` parameter is N/0, or kvm_intel is not loaded)
#   15  qemu-system-x86_64 is not installed
#
# Usage: qemu/kvm-nested.sh [--check] [--iso PATH] [--serial FILE] [--com2 QEMU-CHARDEV]
#                           [--timeout SECS] [--memory MIB]
#   --check    only run the checks (exit 0 when KVM with nested VT-x is usable)
#   --iso      the image to boot (default: target/probevisor/probevisor.iso)
#   --serial   COM1 to this file (default: stdout)
#   --com2     a second serial port, as QEMU's -serial takes it (e.g. unix:/tmp/pv-com2.sock,server,nowait)
#   --timeout  seconds before QEMU is stopped (default 600)
#   --memory   guest memory in MiB (default 2048; the verdict model needs about 1.2 GiB)
#
# The paths it reads can be replaced (for tests, or unusual systems): PROBEVISOR_KVM_DEV (/dev/kvm),
# PROBEVISOR_CPUINFO (/proc/cpuinfo), PROBEVISOR_NESTED_PARAM
# (/sys/module/kvm_intel/parameters/nested), PROBEVISOR_QEMU (qemu-system-x86_64).
set -u

kvm_dev=${PROBEVISOR_KVM_DEV:-/dev/kvm}
cpuinfo=${PROBEVISOR_CPUINFO:-/proc/cpuinfo}
nested_param=${PROBEVISOR_NESTED_PARAM:-/sys/module/kvm_intel/parameters/nested}
qemu=${PROBEVISOR_QEMU:-qemu-system-x86_64}

check_only=0
iso=target/probevisor/probevisor.iso
serial=""
com2=""
timeout_s=600
memory_mib=2048

fail() { # code message...
    local code=$1
    shift
    echo "kvm-nested: $*" >&2
    exit "$code"
}

while [ $# -gt 0 ]; do
    case $1 in
    --check) check_only=1 ;;
    --iso | --serial | --com2 | --timeout | --memory)
        [ $# -ge 2 ] || fail 2 "option $1 needs a value"
        case $1 in
        --iso) iso=$2 ;;
        --serial) serial=$2 ;;
        --com2) com2=$2 ;;
        --timeout) timeout_s=$2 ;;
        --memory) memory_mib=$2 ;;
        esac
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) fail 2 "unexpected argument \`$1' (see --help)" ;;
    esac
    shift
done
case $timeout_s in '' | *[!0-9]*) fail 2 "--timeout expects whole seconds, got \`$timeout_s'" ;; esac
case $memory_mib in '' | *[!0-9]*) fail 2 "--memory expects MiB, got \`$memory_mib'" ;; esac

# 1. /dev/kvm
[ -e "$kvm_dev" ] || fail 10 "$kvm_dev is missing: KVM is not available on this machine (no kvm module, or a container without the device)"
[ -c "$kvm_dev" ] || fail 11 "$kvm_dev is not accessible: it is not a character device"
{ [ -r "$kvm_dev" ] && [ -w "$kvm_dev" ]; } ||
    fail 11 "$kvm_dev is not accessible: $(id -un 2>/dev/null || echo this user) cannot read and write it (add the user to group kvm)"

# 2. Intel CPU with VT-x
[ -r "$cpuinfo" ] || fail 13 "cannot read $cpuinfo to look for the vmx flag"
vendor=$(sed -n 's/^vendor_id[[:space:]]*:[[:space:]]*//p' "$cpuinfo" | head -n 1)
[ "$vendor" = GenuineIntel ] ||
    fail 12 "the CPU is not Intel (vendor_id ${vendor:-unknown}): nested VT-x needs an Intel CPU (on AMD, cargo xtask run uses the SVM backend under QEMU TCG instead: --engine tcg)"
grep -Eq '^flags[[:space:]]*:.*[[:space:]]vmx([[:space:]]|$)' "$cpuinfo" ||
    fail 13 "the CPU has no vmx flag in $cpuinfo: VT-x is off in the firmware, or this machine is a VM without nested VT-x"

# 3. nested VT-x in kvm_intel
[ -r "$nested_param" ] ||
    fail 14 "nested VT-x is off: $nested_param is missing (kvm_intel is not loaded)"
nested=$(tr -d '[:space:]' <"$nested_param")
case $nested in
Y | y | 1) ;;
*) fail 14 "nested VT-x is off ($nested_param = ${nested:-empty}); enable it: modprobe -r kvm_intel && modprobe kvm_intel nested=1" ;;
esac

# 4. QEMU
command -v "$qemu" >/dev/null 2>&1 || fail 15 "$qemu is not installed (apt-get install qemu-system-x86)"

if [ "$check_only" = 1 ]; then
    echo "kvm-nested: ok: $kvm_dev accessible, $vendor CPU with vmx, nested VT-x on, $qemu present"
    exit 0
fi

[ -f "$iso" ] || fail 3 "no image at $iso (build one with cargo xtask image)"

args=(-enable-kvm -cpu host,+vmx -smp 1 -m "$memory_mib"
    -cdrom "$iso" -boot d -display none -monitor none -no-reboot
    -device isa-debug-exit,iobase=0xf4,iosize=0x04)
if [ -n "$serial" ]; then
    args+=(-serial "file:$serial")
else
    args+=(-serial stdio)
fi
[ -n "$com2" ] && args+=(-serial "$com2")

echo "kvm-nested: $qemu ${args[*]}" >&2
timeout --foreground -k 5 "$timeout_s" "$qemu" "${args[@]}"
status=$?
case $status in
33)
    echo "kvm-nested: done: PROBEVISOR-DONE status=ok" >&2
    exit 0
    ;;
124 | 137) fail 1 "QEMU still running after ${timeout_s} s: stopped" ;;
35) fail 1 "the hypervisor ended with a status other than ok (QEMU exit 35)" ;;
*) fail 1 "QEMU exited with status $status" ;;
esac
