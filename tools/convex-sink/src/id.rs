//! Convex document ids (id v6, `crates/value/src/id_v6.rs` in the backend), and the minter that
//! gives each new document one.
//!
//! An id is `base32(VInt(table number) ‖ 16 internal bytes ‖ footer)`: the table number in
//! little-endian base 128 (high bit = more bytes follow), the footer the Fletcher-16 of the bytes
//! before it (both sums mod 256, `c1 << 8 | c0`, XOR'd with version 0) stored little-endian. The
//! base32 is Crockford's alphabet in lowercase, most significant bit first, the last character
//! padded with zero bits. The sink numbers its tables from [`FIRST_TABLE_NUMBER`], which takes two
//! VInt bytes, so every id it makes is 20 bytes, 32 characters, like a real user table's.

/// Convex's base32 alphabet.
pub const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// The length of every id the sink makes.
pub const ID_LEN: usize = 32;
/// The table number of the plan's first table; the next ones follow in plan order.
pub const FIRST_TABLE_NUMBER: u32 = 10_001;
/// The last table number whose ids are 32 characters (two VInt bytes).
pub const LAST_TABLE_NUMBER: u32 = (1 << 14) - 1;

/// A document id as the sink stores it: 32 ASCII characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DocId([u8; ID_LEN]);

impl DocId {
    /// The id of `internal_id` in table `table_number` (10001..=16383, see [`LAST_TABLE_NUMBER`]).
    pub fn new(table_number: u32, internal_id: &[u8; 16]) -> DocId {
        assert!(
            (1 << 7..=LAST_TABLE_NUMBER).contains(&table_number),
            "table number {table_number} does not give a 32-character id"
        );
        let encoded = encode(table_number, internal_id);
        let mut id = [0; ID_LEN];
        id.copy_from_slice(encoded.as_bytes());
        DocId(id)
    }

    /// `s` as an id when it has an id's length and alphabet (its content is not decoded).
    pub fn parse(s: &str) -> Option<DocId> {
        let bytes: [u8; ID_LEN] = s.as_bytes().try_into().ok()?;
        bytes.iter().all(|b| ALPHABET.contains(b)).then_some(DocId(bytes))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ids are ASCII")
    }
}

impl std::fmt::Debug for DocId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The id Convex writes for `internal_id` in table `table_number` (any number, any length).
pub fn encode(table_number: u32, internal_id: &[u8; 16]) -> String {
    let mut bytes = [0u8; 5 + 16 + 2];
    let mut len = 0;
    let mut n = table_number;
    while n >= 0x80 {
        bytes[len] = (n & 0x7f) as u8 | 0x80;
        len += 1;
        n >>= 7;
    }
    bytes[len] = n as u8;
    len += 1;
    bytes[len..len + 16].copy_from_slice(internal_id);
    len += 16;
    let footer = fletcher16(&bytes[..len]).to_le_bytes();
    bytes[len..len + 2].copy_from_slice(&footer);
    len += 2;
    base32(&bytes[..len])
}

/// Decodes an id the way the backend's `DocumentIdV6::decode` does: (table, internal id);
/// `None` for anything that is not an id. The sink's own reading, independent of migrate's
/// `convex::id`, so that each checks the other.
pub fn decode(id: &str) -> Option<(u32, [u8; 16])> {
    let mut bytes = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in id.bytes() {
        let digit = ALPHABET.iter().position(|&a| a == c)? as u32;
        buffer = (buffer << 5) | digit;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            bytes.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    if buffer != 0 {
        return None;
    }
    let (mut table, mut pos) = (0u32, 0);
    loop {
        let byte = *bytes.get(pos)?;
        table |= u32::from(byte & 0x7f) << (7 * pos);
        pos += 1;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let internal: [u8; 16] = bytes.get(pos..pos + 16)?.try_into().ok()?;
    let footer = u16::from_le_bytes(bytes.get(pos + 16..pos + 18)?.try_into().ok()?);
    (bytes.len() == pos + 18 && footer == fletcher16(&bytes[..pos + 16]))
        .then_some((table, internal))
}

/// Fletcher-16 with both sums modulo 256, as `c1 << 8 | c0`.
pub fn fletcher16(bytes: &[u8]) -> u16 {
    let (mut c0, mut c1) = (0u8, 0u8);
    for &byte in bytes {
        c0 = c0.wrapping_add(byte);
        c1 = c1.wrapping_add(c0);
    }
    (u16::from(c1) << 8) | u16::from(c0)
}

/// Most-significant-bit-first base32, the last character padded with zero bits.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buffer, mut bits) = (0u32, 0);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[(buffer >> bits) as usize & 31] as char);
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(ALPHABET[(buffer << (5 - bits)) as usize & 31] as char);
    }
    out
}

/// Gives every new document distinct internal bytes that look random: the first eight are a
/// bijective mix of its slot in its table (so that the id leads back to the slot, [`slot_of`],
/// without an index of ids), the last eight a mix of a counter and the seed (so that a slot used
/// again after a table was emptied gets another id).
pub struct IdMinter {
    next: u64,
    seed: u64,
}

impl IdMinter {
    pub fn new(seed: u64) -> IdMinter {
        IdMinter { next: 0, seed }
    }

    pub fn mint(&mut self, table_number: u32, slot: u32) -> DocId {
        let n = self.next;
        self.next += 1;
        let mut internal = [0u8; 16];
        internal[..8].copy_from_slice(&splitmix64(u64::from(slot)).to_le_bytes());
        internal[8..].copy_from_slice(&splitmix64(n ^ self.seed.rotate_left(32)).to_le_bytes());
        DocId::new(table_number, &internal)
    }
}

/// The slot an id of table `table_number` was minted for; `None` when `id` is no id of that
/// table or was not minted by an [`IdMinter`]. The caller checks the slot still holds that id.
pub fn slot_of(id: &str, table_number: u32) -> Option<u32> {
    let (table, internal) = decode(id).filter(|(table, _)| *table == table_number)?;
    debug_assert_eq!(table, table_number);
    let mixed = u64::from_le_bytes(internal[..8].try_into().expect("eight bytes"));
    u32::try_from(unsplitmix64(mixed)).ok()
}

/// SplitMix64's finalizer: a bijection on u64 that scatters consecutive inputs.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The inverse of [`splitmix64`]: each xor-shift undone by shifting again, each multiplication by
/// the constant's inverse modulo 2^64.
fn unsplitmix64(z: u64) -> u64 {
    let mut x = z ^ (z >> 31) ^ (z >> 62);
    x = x.wrapping_mul(0x3196_42b2_d24d_8ec3);
    x ^= (x >> 27) ^ (x >> 54);
    x = x.wrapping_mul(0x96de_1b17_3f11_9089);
    x ^= (x >> 30) ^ (x >> 60);
    x.wrapping_sub(0x9e37_79b9_7f4a_7c15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backends_stability_id_is_reproduced() {
        // `test_document_id_stability` in id_v6.rs: table 1017, internal bytes 251^(i+1) mod 256.
        let mut internal = [251u8; 16];
        for i in 1..16 {
            internal[i] = internal[i - 1].wrapping_mul(251);
        }
        assert_eq!(encode(1017, &internal), "z43zp6c3e75gkmz1kfwj6mbbx5sw281h");
        assert_eq!(DocId::new(1017, &internal).as_str(), "z43zp6c3e75gkmz1kfwj6mbbx5sw281h");
        assert_eq!(decode("z43zp6c3e75gkmz1kfwj6mbbx5sw281h"), Some((1017, internal)));
    }

    #[test]
    fn id_length_follows_the_table_number() {
        for (table, len) in
            [(1, 31), (127, 31), (128, 32), (16_383, 32), (16_384, 34), (1 << 28, 37)]
        {
            let id = encode(table, &[7; 16]);
            assert_eq!(id.len(), len, "table {table}");
            assert_eq!(decode(&id), Some((table, [7; 16])));
        }
    }

    #[test]
    fn fletcher16_wraps_both_sums() {
        assert_eq!(fletcher16(&[1, 2, 3]), (10 << 8) | 6);
        assert_eq!(fletcher16(&[0xff, 0x02]), 0x0001);
    }

    #[test]
    fn minted_ids_are_distinct_well_formed_of_their_table_and_lead_to_their_slot() {
        let mut minter = IdMinter::new(1);
        let mut seen = std::collections::HashSet::new();
        // Each slot twice, as after a table was emptied: the ids still differ.
        for i in 0..10_000u32 {
            let (table, slot) = (FIRST_TABLE_NUMBER + i % 3, i / 2 % 2_500 * 7_919);
            let id = minter.mint(table, slot);
            let s = id.as_str();
            assert_eq!(s.len(), ID_LEN);
            assert!(s.bytes().all(|c| ALPHABET.contains(&c)), "{s}");
            assert_eq!(decode(s).map(|(t, _)| t), Some(table), "{s}");
            assert_eq!(slot_of(s, table), Some(slot), "{s}");
            assert_eq!(slot_of(s, table + 1), None, "{s} is no id of another table");
            assert!(seen.insert(id), "{s} minted twice");
        }
        assert_eq!(unsplitmix64(splitmix64(u64::MAX)), u64::MAX);
        // Another seed gives other ids.
        assert_ne!(
            IdMinter::new(2).mint(FIRST_TABLE_NUMBER, 0),
            IdMinter::new(1).mint(FIRST_TABLE_NUMBER, 0)
        );
    }

    #[test]
    fn a_changed_character_breaks_the_footer() {
        let id = IdMinter::new(9).mint(FIRST_TABLE_NUMBER, 0).as_str().to_owned();
        for position in 0..id.len() {
            let mut bytes = id.clone().into_bytes();
            bytes[position] = if bytes[position] == b'0' { b'1' } else { b'0' };
            let changed = String::from_utf8(bytes).unwrap();
            assert_eq!(decode(&changed), None, "{changed} accepted");
        }
    }
}
