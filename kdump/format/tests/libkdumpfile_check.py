"""Read a kdump-compressed file with libkdumpfile and compare it with what
crashkit's test wrote next to it.

Usage: /usr/bin/python3 libkdumpfile_check.py DUMP EXPECTED [ARCH]

EXPECTED is a sequence of records: u64 physical address (little-endian),
u8 kind (1 present, 2 excluded), then for a present page its 4096 bytes.
Prints one summary line; exits non-zero at the first difference, or when
ARCH is given and libkdumpfile's `arch.name` is not ARCH (it takes a
kdump-compressed header's utsname, and so the architecture, only when
sysname is Linux and no field is empty).
"""

import struct
import sys

import kdumpfile


def main():
    dump, expected = sys.argv[1], sys.argv[2]
    k = kdumpfile.kdumpfile(dump)
    fmt = k.attr["file.format"]
    if len(sys.argv) > 3:
        arch = k.attr.get("arch.name")
        if arch != sys.argv[3]:
            sys.exit(f"arch.name is {arch!r}, not {sys.argv[3]!r}: the header's utsname was not taken")
    present = excluded = 0
    with open(expected, "rb") as f:
        while True:
            head = f.read(9)
            if not head:
                break
            addr, kind = struct.unpack("<QB", head)
            if kind == 1:
                page = f.read(4096)
                got = k.read(kdumpfile.KDUMP_MACHPHYSADDR, addr, 4096)
                if bytes(got) != page:
                    sys.exit(f"page {addr:#x} differs")
                present += 1
            else:
                try:
                    k.read(kdumpfile.KDUMP_MACHPHYSADDR, addr, 4096)
                except kdumpfile.exceptions.NoDataException:
                    excluded += 1
                else:
                    sys.exit(f"page {addr:#x} should be excluded but reads")
    print(f"libkdumpfile ({fmt}): {present} pages equal, {excluded} excluded as excluded")


main()
