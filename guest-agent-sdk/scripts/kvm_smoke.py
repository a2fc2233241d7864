#!/usr/bin/env python3
"""Smoke-run an agent image under Linux KVM (a stand-in for probevisor, for SDK development only).

usage: python3 guest-agent-sdk/scripts/kvm_smoke.py target/agents/x86_64-unknown-none/release/benign

Loads the ELF's PT_LOAD segments into 8 MiB of guest RAM, enters 64-bit mode at the entry point with
identity paging (2 MiB pages over the low 4 GiB) as docs/agents.md asks of the loader, and prints every
hypercall, tool call, MMIO access and the final exit. KVM answers VMCALL/VMMCALL itself, so each
hypercall instruction in the loaded text is patched to `out 0xE0, al; nop`, which exits here; the
tool device window (0xFEB0_0000) is emulated as in docs/hypercall-abi.md. Tool answers are canned:
reads and listings succeed, destructive and outbound actions are Denied. Needs /dev/kvm; stdlib only.
"""
import ctypes, json, os, signal, struct, sys

KVM_CREATE_VM, KVM_GET_VCPU_MMAP_SIZE, KVM_CREATE_VCPU = 0xAE01, 0xAE04, 0xAE41
KVM_SET_USER_MEMORY_REGION, KVM_RUN = 0x4020AE46, 0xAE80
KVM_GET_REGS, KVM_SET_REGS, KVM_GET_SREGS, KVM_SET_SREGS = 0x8090AE81, 0x4090AE82, 0x8138AE83, 0x4138AE84
KVM_GET_SUPPORTED_CPUID, KVM_SET_CPUID2 = 0xC008AE05, 0x4008AE90
EXIT_IO, EXIT_HLT, EXIT_MMIO, EXIT_SHUTDOWN = 2, 5, 6, 8
MEM = 8 << 20
TOOL = 0xFEB00000
STATUS_NAMES = ["Ok", "Denied", "BadPointer", "BadLength", "BadAlignment", "TooLarge", "UnknownCall",
                "BadVersion", "BadMagic", "BadRequest", "ToolFailed", "UnknownTool", "InternalError"]
ANSWERS = {
    "list_dir": (0, b"README.md\nsrc/\nCargo.toml\n"),
    "read_file": (0, b"# Demo project\n\nA demo.\n"),
    "write_file": (0, b""),
    "delete_file": (1, b"deletes a directory tree"),
    "run_command": (1, b"shell command refused"),
    "net_send": (1, b"outbound data refused"),
    "http_fetch": (1, b"outbound request refused"),
}

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]


def ioctl(fd, request, arg=0):
    result = libc.ioctl(fd, ctypes.c_ulong(request), arg)
    if result < 0:
        raise OSError(ctypes.get_errno(), f"ioctl {request:#x}")
    return result


class Guest:
    def __init__(self, elf):
        self.kvm = os.open("/dev/kvm", os.O_RDWR)
        self.vm = ioctl(self.kvm, KVM_CREATE_VM, 0)
        self.mem = libc.mmap(None, MEM, 3, 0x22, -1, 0)
        region = struct.pack("<IIQQQ", 0, 0, 0, MEM, self.mem)
        ioctl(self.vm, KVM_SET_USER_MEMORY_REGION, ctypes.create_string_buffer(region))
        self.entry = self.load(elf)
        self.setup_cpu()
        self.events = []
        self.device = {"gpa": 0, "status": 0, "len": 0}

    def write(self, gpa, data):
        ctypes.memmove(self.mem + gpa, data, len(data))

    def read(self, gpa, n):
        return ctypes.string_at(self.mem + gpa, n)

    def load(self, elf):
        entry, phoff = struct.unpack_from("<QQ", elf, 24)
        (phnum,) = struct.unpack_from("<H", elf, 56)
        for i in range(phnum):
            kind, _, off, _, paddr, filesz, memsz, _ = struct.unpack_from("<IIQQQQQQ", elf, phoff + 56 * i)
            if kind == 1:
                self.write(paddr, elf[off:off + filesz] + b"\0" * (memsz - filesz))
        text = bytearray(self.read(0x400000, 0x10000))
        patched = 0
        for insn in (b"\x0f\x01\xd9", b"\x0f\x01\xc1"):
            at = text.find(insn)
            while at >= 0:
                self.write(0x400000 + at, b"\xe6\xe0\x90")
                patched += 1
                at = text.find(insn, at + 3)
        print(f"loaded, entry {entry:#x}, {patched} hypercall instructions patched")
        return entry

    def setup_cpu(self):
        self.write(0x1000, struct.pack("<Q", 0x2000 | 3))  # PML4 -> PDPT
        self.write(0x2000, b"".join(struct.pack("<Q", (0x4000 + i * 0x1000) | 3) for i in range(4)))
        self.write(0x4000, b"".join(struct.pack("<Q", (i << 21) | 0x83) for i in range(2048)))
        self.write(0x8000, struct.pack("<QQQ", 0, 0x00AF9A000000FFFF, 0x00CF92000000FFFF))  # GDT
        self.vcpu = ioctl(self.vm, KVM_CREATE_VCPU, 0)
        cpuid = ctypes.create_string_buffer(8 + 40 * 100)
        struct.pack_into("<I", cpuid, 0, 100)
        ioctl(self.kvm, KVM_GET_SUPPORTED_CPUID, cpuid)
        ioctl(self.vcpu, KVM_SET_CPUID2, cpuid)
        size = ioctl(self.kvm, KVM_GET_VCPU_MMAP_SIZE, 0)
        self.run = libc.mmap(None, size, 3, 1, self.vcpu, 0)
        sregs = ctypes.create_string_buffer(312)
        ioctl(self.vcpu, KVM_GET_SREGS, sregs)
        raw = bytearray(sregs.raw)

        def segment(selector, kind, code, s=1, limit=0xFFFFFFFF):
            return struct.pack("<QIHBBBBBBBBBB", 0, limit, selector, kind, 1, 0, 0 if code else 1, s,
                               1 if code else 0, 1, 0, 0, 0)

        raw[0:24] = segment(8, 11, True)
        for i in (1, 2, 3, 4, 5):
            raw[24 * i:24 * i + 24] = segment(16, 3, False)
        raw[144:168] = struct.pack("<QIHBBBBBBBBBB", 0, 0x67, 0x18, 11, 1, 0, 0, 0, 0, 0, 0, 0, 0)  # TR
        struct.pack_into("<QH", raw, 192, 0x8000, 23)
        struct.pack_into("<QQQQQQ", raw, 224, 0x80000031, 0, 0x1000, 0x20, 0, 0x500)  # CR0 CR2 CR3 CR4 CR8 EFER
        ioctl(self.vcpu, KVM_SET_SREGS, ctypes.create_string_buffer(bytes(raw), 312))
        regs = [0] * 18
        regs[16], regs[17] = self.entry, 2
        self.set_regs(regs)

    def regs(self):
        buf = ctypes.create_string_buffer(144)
        ioctl(self.vcpu, KVM_GET_REGS, buf)
        return list(struct.unpack("<18Q", buf.raw))

    def set_regs(self, regs):
        ioctl(self.vcpu, KVM_SET_REGS, ctypes.create_string_buffer(struct.pack("<18Q", *regs), 144))

    def hypercall(self, number, gpa):
        """(status, length, stop) for call `number` with the request at `gpa` (coarse ABI checks)."""
        def inside(g, n):
            return n == 0 or (g != 0 and g + n <= MEM)
        if number not in (1, 2, 3):
            return 6, 0, False
        if gpa == 0 or gpa + 64 > MEM:
            return 2, 0, False
        if gpa % 8:
            return 4, 0, False
        magic, version, kind, _, code, ng, nl, ag, al, rg, rc = struct.unpack("<IHHIIQQQQQQ", self.read(gpa, 64))
        if magic != 0x43485650:
            return 8, 0, False
        if version != 1:
            return 7, 0, False
        if not (inside(ng, nl) and inside(ag, al) and inside(rg, rc)):
            return 2, 0, False
        if number == 2:
            self.events.append("console: " + self.read(ag, al).decode().rstrip("\n"))
            return 0, 0, False
        if number == 3:
            self.events.append(f"exit code={code:#x} message={self.read(ag, al).decode()!r}")
            return 0, 0, True
        name, args = self.read(ng, nl).decode(), self.read(ag, al).decode()
        json.loads(args)
        status, out = ANSWERS.get(name, (11, b""))
        self.events.append(f"tool {name} {args[:100]} -> {STATUS_NAMES[status]}")
        self.write(rg, out[:rc])
        return status, len(out), False

    def mmio(self, addr, data, length, is_write):
        """Returns False when the access stops the agent."""
        if not TOOL <= addr < TOOL + 0x1000:
            self.events.append(f"{'store' if is_write else 'load'} outside RAM at {addr:#x} (stops the agent)")
            return False
        offset = addr - TOOL
        if is_write:
            value = int.from_bytes(data[:length], "little")
            if offset == 0x08 and length == 8:
                self.device["gpa"] = value
            elif offset == 0x10 and length == 8:
                status, n, _ = self.hypercall(value, self.device["gpa"])
                self.device["status"], self.device["len"] = status, n
                self.events.append(f"tool device doorbell {value} -> {STATUS_NAMES[status]}")
            else:
                self.events.append(f"tool device: refused write at +{offset:#x} (stops the agent)")
                return False
            return True
        values = {0x00: 0x44545650, 0x04: 1, 0x08: self.device["gpa"], 0x18: self.device["status"],
                  0x20: self.device["len"]}
        self.events.append(f"tool device read +{offset:#x}")
        ctypes.memmove(self.run + 40, values.get(offset, 0).to_bytes(8, "little"), 8)
        return True

    def go(self, seconds=5):
        signal.signal(signal.SIGALRM, lambda *_: None)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        while True:
            try:
                ioctl(self.vcpu, KVM_RUN, 0)
            except OSError:
                self.events.append(f"timed out after {seconds} s")
                break
            (reason,) = struct.unpack_from("<I", ctypes.string_at(self.run + 8, 4))
            if reason == EXIT_IO and struct.unpack_from("<H", ctypes.string_at(self.run + 34, 2))[0] == 0xE0:
                regs = self.regs()
                status, length, stop = self.hypercall(regs[0], regs[1])
                if status > 1:
                    self.events.append(f"hypercall {regs[0]:#x} at {regs[1]:#x} -> {STATUS_NAMES[status]}")
                regs[0], regs[3] = status, length
                self.set_regs(regs)
                if stop:
                    break
            elif reason == EXIT_MMIO:
                addr, data, length, is_write = struct.unpack_from("<Q8sIB", ctypes.string_at(self.run + 32, 24))
                if not self.mmio(addr, data, length, is_write):
                    break
            elif reason == EXIT_HLT:
                self.events.append("hlt")
                break
            elif reason == EXIT_SHUTDOWN:
                self.events.append("shutdown (triple fault)")
                break
            else:
                self.events.append(f"KVM exit reason {reason}")
                break
        print("\n".join(self.events))
        print(f"final rip={self.regs()[16]:#x}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    Guest(open(sys.argv[1], "rb").read()).go()
