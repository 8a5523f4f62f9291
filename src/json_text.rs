//! Writing JSON text by hand on hot paths (export's raw rows, transform's documents), where
//! building a `serde_json::Value` per value would cost an allocation each.

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Bytes a JSON string must escape: control characters, `"` and `\`.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = true;
        i += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// The first position at or after `from` of a byte a JSON string cannot hold as it is (a
/// control character, `"` or `\`), or `bytes.len()`. Eight bytes at a time: strings are most
/// of the text transform reads.
pub fn plain_run_end(bytes: &[u8], mut from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = bytes.get(from..from + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        // The high bit of each byte that is zero (for `quote` and `backslash`: that matches)
        // or below 0x20; borrows only run upwards, so the lowest marked byte is the first.
        let marked = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (word.wrapping_sub(ONES * 0x20) & !word))
            & HIGH_BITS;
        if marked != 0 {
            return from + (marked.trailing_zeros() / 8) as usize;
        }
        from += 8;
    }
    from + bytes[from.min(bytes.len())..].iter().take_while(|&&b| !NEEDS_ESCAPE[b as usize]).count()
}

/// Appends `s` as a JSON string literal, escaped exactly as serde_json escapes it. Jumps from
/// one byte to escape to the next with [`plain_run_end`].
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    loop {
        let end = plain_run_end(bytes, start);
        out.extend_from_slice(&bytes[start..end]);
        let Some(&byte) = bytes.get(end) else { break };
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            control => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(control >> 4) as usize]);
                out.push(HEX[(control & 0xf) as usize]);
            }
        }
        start = end + 1;
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn escapes_like_serde_json() {
        for s in ["plain", "a\"b\\c", "line\nbreak\ttab\r", "\u{0}\u{8}\u{c}\u{1f}", "é ü 日本", ""]
        {
            let mut out = Vec::new();
            write_string(&mut out, s);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(s).unwrap());
        }
    }

    /// Strings with many bytes to escape, at every distance from the eight-byte boundaries,
    /// besides arbitrary ones.
    fn string() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            proptest::collection::vec(
                prop_oneof![
                    6 => proptest::char::range('a', 'z'),
                    2 => proptest::char::range('\0', '\u{1f}'),
                    2 => proptest::sample::select(vec!['"', '\\', '\u{7f}', 'é', '日', '😀']),
                ],
                0..64,
            )
            .prop_map(|chars| chars.into_iter().collect()),
        ]
    }

    proptest::proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn strings_are_written_as_serde_json_writes_them(s in string()) {
            let mut out = Vec::new();
            write_string(&mut out, &s);
            proptest::prop_assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&s).unwrap()
            );
        }

        #[test]
        fn plain_runs_end_where_a_byte_by_byte_scan_ends(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    8 => 0x20u8..0x7f,
                    1 => proptest::prelude::any::<u8>(),
                    1 => proptest::sample::select(vec![b'"', b'\\', 0x1f, 0x20, 0x80, 0xff]),
                ],
                0..40,
            ),
            from in 0usize..40,
        ) {
            let from = from.min(bytes.len());
            let expected = from
                + bytes[from..].iter().position(|&b| b < 0x20 || b == b'"' || b == b'\\')
                    .unwrap_or(bytes.len() - from);
            proptest::prop_assert_eq!(plain_run_end(&bytes, from), expected);
        }
    }
}
