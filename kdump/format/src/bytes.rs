//! Little-endian field access that never panics.
//!
//! Readers take a slice and an offset from a hostile file: every accessor
//! returns `None` when the field does not fit. Writers fill fixed-size
//! buffers at constant offsets; their `put_*` helpers ignore a field that
//! does not fit instead of panicking (a layout bug then shows up as a wrong
//! byte in the round-trip tests, never as a panic on the crash path).

/// `N` bytes at `offset`, if they are all inside `bytes`.
pub(crate) fn array_at<const N: usize>(bytes: &[u8], offset: usize) -> Option<[u8; N]> {
    let end = offset.checked_add(N)?;
    let field = bytes.get(offset..end)?;
    let mut out = [0u8; N];
    out.copy_from_slice(field);
    Some(out)
}

pub(crate) fn u16_at(bytes: &[u8], offset: usize) -> Option<u16> {
    array_at(bytes, offset).map(u16::from_le_bytes)
}

pub(crate) fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    array_at(bytes, offset).map(u32::from_le_bytes)
}

pub(crate) fn u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    array_at(bytes, offset).map(u64::from_le_bytes)
}

/// `len` bytes at a 64-bit file offset, if they are all inside `bytes`.
#[cfg(any(feature = "alloc", test))]
pub(crate) fn slice_at(bytes: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let len = usize::try_from(len).ok()?;
    bytes.get(start..start.checked_add(len)?)
}

pub(crate) fn put(buf: &mut [u8], offset: usize, field: &[u8]) {
    let Some(end) = offset.checked_add(field.len()) else {
        return;
    };
    if let Some(dst) = buf.get_mut(offset..end) {
        dst.copy_from_slice(field);
    }
}

pub(crate) fn put_u16(buf: &mut [u8], offset: usize, value: u16) {
    put(buf, offset, &value.to_le_bytes());
}

pub(crate) fn put_u32(buf: &mut [u8], offset: usize, value: u32) {
    put(buf, offset, &value.to_le_bytes());
}

pub(crate) fn put_u64(buf: &mut [u8], offset: usize, value: u64) {
    put(buf, offset, &value.to_le_bytes());
}

/// Round `value` up to a multiple of `align` (a power of two), `None` on
/// overflow.
pub(crate) const fn align_up(value: u64, align: u64) -> Option<u64> {
    match value.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_refuse_fields_past_the_end() {
        let bytes = [1u8, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(u32_at(&bytes, 4), Some(0x0807_0605));
        assert_eq!(u32_at(&bytes, 5), None);
        assert_eq!(u64_at(&bytes, usize::MAX), None);
        assert_eq!(slice_at(&bytes, u64::MAX, 1), None);
        assert_eq!(slice_at(&bytes, 2, 6), Some(&bytes[2..]));
        let mut buf = [0u8; 4];
        put_u64(&mut buf, 0, u64::MAX);
        assert_eq!(buf, [0; 4], "a field that does not fit is not written");
        put_u16(&mut buf, 2, 0xbeef);
        assert_eq!(buf, [0, 0, 0xef, 0xbe]);
        assert_eq!(align_up(4097, 4096), Some(8192));
        assert_eq!(align_up(u64::MAX, 4096), None);
    }
}
