//! Convex document ids (id v6), checked offline (`crates/value/src/id_v6.rs`, `base32.rs`).
//!
//! An id is `base32(VInt(table number) ‖ 16 internal bytes ‖ footer)`: the table number in 1 to 5
//! bytes of little-endian base-128 (high bit = more bytes follow), the footer Fletcher-16 with
//! wrapping 8-bit sums over everything before it, stored little-endian (`c0` then `c1`), XOR'd
//! with version 0. The base32 is Crockford's alphabet in lowercase, most significant bit first,
//! the last character padded with zero bits. Tables 1 to 127 give 31 characters, up to 16383 32,
//! then 34, 36 and 37.
//!
//! Which table a number stands for is per deployment: an id can be checked for shape, not for
//! the table it belongs to, without asking Convex.

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const INTERNAL_ID_LEN: usize = 16;
const FOOTER_LEN: usize = 2;

/// The shortest id: a one-byte table number (19 bytes, 31 characters).
pub const MIN_ID_LEN: usize = 31;
/// The longest id: a five-byte table number (23 bytes, 37 characters).
pub const MAX_ID_LEN: usize = 37;

/// Why a string is not a Convex document id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("an id has {MIN_ID_LEN} to {MAX_ID_LEN} characters, not {0}")]
    Length(usize),
    #[error("{character:?} at position {position} is not in Convex's base32 alphabet")]
    Character { character: char, position: usize },
    #[error("the id is not base32 as Convex writes it (its length or last character is off)")]
    NotCanonical,
    #[error("the table number is malformed")]
    TableNumber,
    #[error("the table number is 0")]
    ZeroTable,
    #[error("the id's length does not fit its table number")]
    LengthMismatch,
    #[error("the checksum does not match")]
    Checksum,
}

/// Whether `s` has the shape of a Convex document id, exactly as Convex writes them.
pub fn is_document_id(s: &str) -> bool {
    decode(s).is_ok()
}

/// The table number of a Convex document id.
///
/// Stricter than Convex's own decoder in one way: it refuses spellings Convex never writes
/// (non-zero padding bits, a table number in more bytes than needed), which that decoder reads
/// as the same id. So exactly one string stands for each id, and any one-character change of a
/// valid id is refused.
pub fn decode(s: &str) -> Result<u32, IdError> {
    let chars = s.chars().take(MAX_ID_LEN + 1).count();
    if !(MIN_ID_LEN..=MAX_ID_LEN).contains(&chars) {
        return Err(IdError::Length(s.chars().count()));
    }
    let bytes = base32_decode(s)?;

    let mut table_number = 0u32;
    let mut pos = 0;
    loop {
        let byte = bytes[pos];
        // The fifth byte holds the top 4 bits of a u32 and ends the number.
        if pos == 4 && byte > 0x0f {
            return Err(IdError::TableNumber);
        }
        table_number |= u32::from(byte & 0x7f) << (7 * pos);
        pos += 1;
        if byte & 0x80 == 0 {
            if pos > 1 && byte == 0 {
                return Err(IdError::TableNumber);
            }
            break;
        }
    }
    if table_number == 0 {
        return Err(IdError::ZeroTable);
    }
    let footer_at = pos + INTERNAL_ID_LEN;
    if bytes.len() != footer_at + FOOTER_LEN {
        return Err(IdError::LengthMismatch);
    }
    let footer = u16::from_le_bytes([bytes[footer_at], bytes[footer_at + 1]]);
    if footer != fletcher16(&bytes[..footer_at]) {
        return Err(IdError::Checksum);
    }
    Ok(table_number)
}

/// Decodes most-significant-bit-first base32, refusing leftover bits that are not zero and
/// lengths that leave a whole unused character (which Convex's encoder never writes).
fn base32_decode(s: &str) -> Result<Vec<u8>, IdError> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let mut buffer = 0u32;
    let mut bits = 0;
    for (position, byte) in s.bytes().enumerate() {
        let Some(digit) = ALPHABET.iter().position(|&a| a == byte) else {
            // Every byte before this one was ASCII, so `position` starts a character.
            let character = s[position..].chars().next().expect("position is inside s");
            return Err(IdError::Character { character, position });
        };
        buffer = (buffer << 5) | digit as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    if bits >= 5 || buffer != 0 {
        return Err(IdError::NotCanonical);
    }
    Ok(out)
}

/// Fletcher-16 with both sums modulo 256, as `c1 << 8 | c0`.
fn fletcher16(bytes: &[u8]) -> u16 {
    let (mut c0, mut c1) = (0u8, 0u8);
    for &byte in bytes {
        c0 = c0.wrapping_add(byte);
        c1 = c1.wrapping_add(c0);
    }
    (u16::from(c1) << 8) | u16::from(c0)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    // Ids are built with the sink's encoder, written independently of this decoder: each
    // checks the other, and both are checked against the backend's own test id.
    use convex_sink::id::{base32 as base32_encode, encode};

    /// `test_document_id_stability` in `crates/value/src/id_v6.rs`: table 1017, internal id
    /// bytes 251, 251², 251³... (mod 256).
    const CONVEX_ID: &str = "z43zp6c3e75gkmz1kfwj6mbbx5sw281h";

    fn convex_internal_id() -> [u8; 16] {
        let mut id = [251u8; 16];
        for i in 1..16 {
            id[i] = id[i - 1].wrapping_mul(251);
        }
        id
    }

    #[test]
    fn a_real_convex_id_decodes_to_its_table() {
        assert_eq!(decode(CONVEX_ID), Ok(1017));
        assert!(is_document_id(CONVEX_ID));
        assert_eq!(encode(1017, &convex_internal_id()), CONVEX_ID);
    }

    #[test]
    fn id_length_follows_the_table_number() {
        let cases = [
            (1, 31),
            (127, 31),
            (128, 32),
            (16_383, 32),
            (16_384, 34),
            (1 << 21, 36),
            (1 << 28, 37),
        ];
        for (table, len) in cases {
            let id = encode(table, &[7; 16]);
            assert_eq!(id.len(), len, "id of table {table}");
            assert_eq!(decode(&id), Ok(table), "decode of {id}");
        }
        assert_eq!(decode(&encode(u32::MAX, &[0xff; 16])), Ok(u32::MAX));
    }

    #[test]
    fn malformed_ids_are_refused_with_a_reason() {
        let valid = encode(5, &[9; 16]);
        let upper = CONVEX_ID.to_uppercase();
        // 33 characters: the last one carries padding only.
        let padded = format!("{CONVEX_ID}0");
        let nonzero_padding = {
            // The last of 31 characters carries 2 data bits and 3 padding bits.
            let mut s = valid.clone();
            let last = s.pop().expect("non-empty");
            let digit = ALPHABET.iter().position(|&a| a as char == last).expect("in alphabet");
            s.push(ALPHABET[digit | 1] as char);
            s
        };
        // 19 bytes, as for a one-byte table number, but the table number takes two.
        let two_byte_table_in_31_characters =
            base32_encode(&[[0x81, 0x01].as_slice(), &[9; 17]].concat());
        let cases: Vec<(String, IdError)> = vec![
            (String::new(), IdError::Length(0)),
            ("users".into(), IdError::Length(5)),
            (format!("{CONVEX_ID}00000000"), IdError::Length(40)),
            (upper, IdError::Character { character: 'Z', position: 0 }),
            (CONVEX_ID.replacen('z', "i", 1), IdError::Character { character: 'i', position: 0 }),
            (format!("{}é", &valid[..30]), IdError::Character { character: 'é', position: 30 }),
            (padded, IdError::NotCanonical),
            (nonzero_padding, IdError::NotCanonical),
            (encode(0, &[9; 16]), IdError::ZeroTable),
            (two_byte_table_in_31_characters, IdError::LengthMismatch),
        ];
        for (id, error) in cases {
            assert_eq!(decode(&id), Err(error), "decode of {id:?}");
            assert!(!is_document_id(&id), "{id:?} accepted");
        }
        assert_eq!(IdError::Length(5).to_string(), "an id has 31 to 37 characters, not 5");
    }

    #[test]
    fn non_minimal_table_numbers_and_bad_checksums_are_refused() {
        // Table 1 written in two bytes (0x81 0x00): Convex's decoder reads it as table 1.
        let mut bytes = vec![0x81, 0x00];
        bytes.extend_from_slice(&[3; 16]);
        bytes.extend_from_slice(&fletcher16(&bytes).to_le_bytes());
        assert_eq!(decode(&base32_encode(&bytes)), Err(IdError::TableNumber));

        // Five table-number bytes with bits past 32 set.
        let mut bytes = vec![0xff, 0xff, 0xff, 0xff, 0x1f];
        bytes.extend_from_slice(&[3; 16]);
        bytes.extend_from_slice(&fletcher16(&bytes).to_le_bytes());
        assert_eq!(decode(&base32_encode(&bytes)), Err(IdError::TableNumber));

        let mut bytes = vec![0x05];
        bytes.extend_from_slice(&[3; 16]);
        bytes.extend_from_slice(&(fletcher16(&bytes) ^ 1).to_le_bytes());
        assert_eq!(decode(&base32_encode(&bytes)), Err(IdError::Checksum));
    }

    #[test]
    fn fletcher16_matches_its_definition() {
        // c0 = 1+2+3 = 6; c1 = 1 + 3 + 6 = 10.
        assert_eq!(fletcher16(&[1, 2, 3]), (10 << 8) | 6);
        // Both sums wrap at 256: c0 = 0xff+0x02 = 0x01, c1 = 0xff + 0x01 = 0x00.
        assert_eq!(fletcher16(&[0xff, 0x02]), 0x0001);
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn encoded_ids_decode_to_their_table(table in 1u32.., internal in any::<[u8; 16]>()) {
            let id = encode(table, &internal);
            prop_assert_eq!(decode(&id), Ok(table));
        }

        #[test]
        fn decoding_any_string_returns_without_panicking(
            s in prop_oneof!["[0-9a-z]{29,39}", any::<String>()],
        ) {
            let result = decode(&s);
            prop_assert_eq!(is_document_id(&s), result.is_ok());
        }

        #[test]
        fn any_one_character_change_is_refused(
            table in prop_oneof![1u32..128, 128u32..16_384, 16_384u32..1 << 28, 1u32..],
            internal in any::<[u8; 16]>(),
            // The last character half the time: it is the one carrying padding bits.
            position in prop_oneof![any::<prop::sample::Index>().prop_map(Some), Just(None)],
            replacement in prop_oneof![
                prop::sample::select(ALPHABET.to_vec()).prop_map(char::from),
                prop::sample::select(vec!['A', 'Z', 'i', 'l', 'o', 'u', '-', '_', ' ', 'é']),
            ],
        ) {
            let id = encode(table, &internal);
            let position = position.map_or(id.len() - 1, |p| p.index(id.len()));
            let original = id.as_bytes()[position] as char;
            prop_assume!(replacement != original);
            let mut changed = id[..position].to_owned();
            changed.push(replacement);
            changed.push_str(&id[position + 1..]);
            prop_assert!(!is_document_id(&changed), "{} accepted after changing {} into {}", changed, id, replacement);
        }
    }
}
