"""Read every page of a kdump-compressed dump with libkdumpfile and check
it against the guest's RAM (QEMU's file-backed RAM: physical memory from 0).

Usage: /usr/bin/python3 libkdumpfile_ram.py DUMP RAM RANGES

RANGES is `start-end,start-end` in hex (physical, page aligned, end
exclusive): the memory the dump must hold. Every page there must read
(no "no data") and equal RAM. Prints one line; exits non-zero at the first
difference.
"""

import sys

import kdumpfile

PAGE = 4096


def main():
    dump_path, ram_path, ranges = sys.argv[1], sys.argv[2], sys.argv[3]
    dump = kdumpfile.kdumpfile(dump_path)
    fmt = dump.attr["file.format"]
    equal = 0
    with open(ram_path, "rb") as ram:
        for span in ranges.split(","):
            start, end = (int(x, 16) for x in span.split("-"))
            for addr in range(start, end, PAGE):
                try:
                    got = bytes(dump.read(kdumpfile.KDUMP_MACHPHYSADDR, addr, PAGE))
                except kdumpfile.exceptions.NoDataException:
                    sys.exit(f"{dump_path} ({fmt}): page {addr:#x} has no data")
                ram.seek(addr)
                if got != ram.read(PAGE):
                    sys.exit(f"{dump_path} ({fmt}): page {addr:#x} differs from guest RAM")
                equal += 1
    print(f"{dump_path} ({fmt}): {equal} pages equal to guest RAM")


main()
