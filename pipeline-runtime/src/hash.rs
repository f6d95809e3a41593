//! Stable hashing of keys for `split_by`: the same key lands in the same arm in every run, on
//! every machine and in every version (unlike `std`'s randomly seeded `Hash`).

/// A key that `split_by` can hash stably.
///
/// Integers hash as the CRC32 of their decimal text (`42` and `"42"` land together), strings as
/// the CRC32 of their UTF-8 bytes.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as a `split_by` key",
    label = "the key function returns `{Self}`",
    note = "keys must implement `tandem::prelude::StableKey` (integers, strings, `bool`, `char`, and tuples of those do); implement it for your type or return one of those"
)]
pub trait StableKey {
    /// A 32-bit hash that never changes between runs.
    fn stable_hash(&self) -> u32;
}

macro_rules! decimal_keys {
    ($($t:ty)*) => {$(
        impl StableKey for $t {
            #[inline]
            fn stable_hash(&self) -> u32 {
                crc32fast::hash(itoa::Buffer::new().format(*self).as_bytes())
            }
        }
    )*};
}
decimal_keys!(u8 u16 u32 u64 u128 usize i8 i16 i32 i64 i128 isize);

impl StableKey for str {
    #[inline]
    fn stable_hash(&self) -> u32 {
        crc32fast::hash(self.as_bytes())
    }
}

impl StableKey for String {
    #[inline]
    fn stable_hash(&self) -> u32 {
        self.as_str().stable_hash()
    }
}

impl StableKey for bool {
    fn stable_hash(&self) -> u32 {
        crc32fast::hash(if *self { b"true" } else { b"false" })
    }
}

impl StableKey for char {
    fn stable_hash(&self) -> u32 {
        crc32fast::hash(self.encode_utf8(&mut [0; 4]).as_bytes())
    }
}

impl<K: StableKey + ?Sized> StableKey for &K {
    #[inline]
    fn stable_hash(&self) -> u32 {
        (**self).stable_hash()
    }
}

impl<A: StableKey, B: StableKey> StableKey for (A, B) {
    fn stable_hash(&self) -> u32 {
        let mut h = crc32fast::Hasher::new();
        h.update(&self.0.stable_hash().to_le_bytes());
        h.update(&self.1.stable_hash().to_le_bytes());
        h.finalize()
    }
}
