"""Read every page of a source dump and of files converted from it with
libkdumpfile, and check that each converted file answers as the source.

Usage: /usr/bin/python3 libkdumpfile_same_pages.py SOURCE RANGES OUTPUT...

RANGES is `start-end,start-end` in hex (physical, page aligned, end
exclusive): the source's memory. For each page, what libkdumpfile reads
from the source must be what it reads from every OUTPUT: the same bytes,
or no data where the source has none (a page makedumpfile excluded). An
ELF output may also leave a zero page out (its `p_memsz` past `p_filesz`):
libkdumpfile reads such a page as "no data", so there the source's page
must be all zeros, and the page is counted as left out. A
kdump-compressed output gives every page the source has. Prints one line
per output; exits non-zero at the first difference.

libkdumpfile 0.5.1 reads the page just before an ELF segment's file data
as zeros even where no segment holds it (its closest-segment search takes
a segment one page away as overlapping). For an ELF, a page outside every
segment's file data that reads as zeros is taken as no data, and counted,
only when the next page starts a segment's file data.
"""

import struct
import sys

import kdumpfile

PAGE = 4096
ZERO = bytes(PAGE)


def file_backed(path):
    """The `(start, end)` physical ranges of an ELF64's PT_LOAD file data."""
    with open(path, "rb") as f:
        head = f.read(64)
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    ranges = []
    for i in range(phnum):
        p_type, _, _, _, paddr, filesz, _, _ = struct.unpack_from("<IIQQQQQQ", table, i * phentsize)
        if p_type == 1 and filesz > 0:
            ranges.append((paddr, paddr + filesz))
    return ranges


class Dump:
    def __init__(self, path):
        self.path = path
        self.k = kdumpfile.kdumpfile(path)
        self.fmt = self.k.attr["file.format"]
        self.file = file_backed(path) if self.fmt == "elf" else None
        self.starts = {start for start, _ in self.file or []}
        self.quirks = 0

    def read(self, addr):
        try:
            got = bytes(self.k.read(kdumpfile.KDUMP_MACHPHYSADDR, addr, PAGE))
        except kdumpfile.exceptions.NoDataException:
            return None
        if self.file is not None and not any(s <= addr < e for s, e in self.file):
            if got != ZERO or addr + PAGE not in self.starts:
                sys.exit(f"{self.path}: page {addr:#x} is in no segment's file data but reads")
            self.quirks += 1
            return None
        return got


def main():
    source_path, ranges = sys.argv[1], sys.argv[2]
    outputs = sys.argv[3:]
    source = Dump(source_path)
    opened = [Dump(path) for path in outputs]
    equal = [0] * len(opened)
    left_out = [0] * len(opened)
    absent = 0
    for span in ranges.split(","):
        start, end = (int(x, 16) for x in span.split("-"))
        for addr in range(start, end, PAGE):
            expected = source.read(addr)
            if expected is None:
                absent += 1
            for i, dump in enumerate(opened):
                path, fmt = dump.path, dump.fmt
                got = dump.read(addr)
                if expected is None:
                    if got is not None:
                        sys.exit(f"{path} ({fmt}): page {addr:#x} reads, but the source has no data there")
                elif got is None:
                    if fmt != "elf":
                        sys.exit(f"{path} ({fmt}): page {addr:#x} has no data")
                    if expected != ZERO:
                        sys.exit(f"{path}: page {addr:#x} has no data but is not zero in the source")
                    left_out[i] += 1
                elif got != expected:
                    sys.exit(f"{path} ({fmt}): page {addr:#x} differs from the source")
                else:
                    equal[i] += 1
    for i, dump in enumerate(opened):
        print(
            f"{dump.path} ({dump.fmt}): {equal[i]} pages equal, {left_out[i]} zero pages "
            f"left out, {absent} without data in both ({source.quirks} and {dump.quirks} read "
            "as zeros before a segment)"
        )


main()
