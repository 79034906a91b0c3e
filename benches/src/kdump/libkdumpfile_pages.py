"""Read every page of kdump-compressed files with libkdumpfile and check
each against the ELF image they were written from.

Usage: /usr/bin/python3 libkdumpfile_pages.py IMAGE OUTPUT...

IMAGE is an ELF vmcore with every page of its PT_LOAD segments in the
file (the benchmark's images). For every page of every segment, each
OUTPUT read through libkdumpfile must give the image's bytes, or no data
where the image's page is all zeros (dump level 1 excludes zero pages;
libkdumpfile 0.5.1 reads an excluded page as zeros).
Prints one line per output; exits non-zero at the first difference.
"""

import mmap
import struct
import sys

import kdumpfile

PAGE = 4096
ZERO = bytes(PAGE)


def segments(image):
    """The `(physical address, file offset, size)` of each PT_LOAD."""
    head = image[:64]
    if head[:4] != b"\x7fELF" or head[4] != 2:
        sys.exit("the image is not an ELF64 file")
    phoff, = struct.unpack_from("<Q", head, 32)
    phentsize, phnum = struct.unpack_from("<HH", head, 54)
    out = []
    for i in range(phnum):
        p_type, _, offset, _, paddr, filesz, memsz, _ = struct.unpack_from(
            "<IIQQQQQQ", image, phoff + i * phentsize)
        if p_type == 1:
            if filesz != memsz:
                sys.exit(f"segment at {paddr:#x}: not every page is in the file")
            out.append((paddr, offset, filesz))
    return out


def main():
    with open(sys.argv[1], "rb") as f:
        image = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    loads = segments(image)
    for path in sys.argv[2:]:
        k = kdumpfile.kdumpfile(path)
        equal = zero = excluded = 0
        for paddr, offset, size in loads:
            for at in range(0, size - size % PAGE, PAGE):
                expected = image[offset + at:offset + at + PAGE]
                try:
                    got = bytes(k.read(kdumpfile.KDUMP_MACHPHYSADDR, paddr + at, PAGE))
                except kdumpfile.exceptions.NoDataException:
                    if expected != ZERO:
                        sys.exit(f"{path}: page {paddr + at:#x} has no data but is not zero")
                    excluded += 1
                    continue
                if got != expected:
                    sys.exit(f"{path}: page {paddr + at:#x} differs from the image")
                equal += 1
                zero += expected == ZERO
        print(f"{path} ({k.attr['file.format']}): {equal} pages equal to the image's ({zero} of "
              f"them zero), {excluded} without data (zero in the image)")


main()
