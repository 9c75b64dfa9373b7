//! The binary encoding of one candle chunk, as stored in Redis.
//!
//! ```text
//! offset      size  content
//! 0           4     magic b"SBC1"
//! 4           4     n, the row count, u32 little-endian
//! 8           8n    ts column, i64 little-endian
//! 8+8n        8n    open  (f64 bit patterns, little-endian)
//! 8+16n       8n    high
//! 8+24n       8n    low
//! 8+32n       8n    close
//! 8+40n       8n    volume
//! 8+48n       4     CRC-32 (crc32fast, IEEE) of bytes 0..8+48n, u32 LE
//! ```
//!
//! Columns, not rows, so a decoder copies each column in one pass; floats
//! as bit patterns, so every value (-0.0, subnormals) comes back bit for
//! bit. Any machine decodes it the same way: the byte order is fixed.

use super::{Result, StoreError};
use stratbox_engine::candles::Candles;

pub const MAGIC: &[u8; 4] = b"SBC1";
const HEADER: usize = 8;
const TRAILER: usize = 4;
/// Bytes per row: ts and five floats.
pub const ROW_BYTES: usize = 48;

/// Encodes candles whose columns all have the same length.
pub fn encode(candles: &Candles) -> Result<Vec<u8>> {
    let n = candles.len();
    let columns = [
        &candles.open,
        &candles.high,
        &candles.low,
        &candles.close,
        &candles.volume,
    ];
    if columns.iter().any(|c| c.len() != n) {
        return Err(StoreError::invalid(
            "candles",
            "columns have different lengths",
        ));
    }
    let count = u32::try_from(n)
        .map_err(|_| StoreError::invalid("candles", format!("{n} rows do not fit a chunk")))?;
    let mut out = Vec::with_capacity(HEADER + ROW_BYTES * n + TRAILER);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&count.to_le_bytes());
    for ts in &candles.ts {
        out.extend_from_slice(&ts.to_le_bytes());
    }
    for column in columns {
        for v in column {
            out.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Decodes a chunk read from `key` (named in the error when the bytes
/// are not a whole, intact chunk).
pub fn decode(key: &str, bytes: &[u8]) -> Result<Candles> {
    let corrupt = |reason: String| StoreError::corrupt(key, reason);
    if bytes.len() < HEADER + TRAILER {
        return Err(corrupt(format!(
            "chunk of {} bytes is too short",
            bytes.len()
        )));
    }
    if &bytes[..4] != MAGIC {
        return Err(corrupt("bad magic, not a candle chunk".to_string()));
    }
    let n = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    let expected = n
        .checked_mul(ROW_BYTES)
        .and_then(|b| b.checked_add(HEADER + TRAILER));
    if expected != Some(bytes.len()) {
        return Err(corrupt(format!(
            "chunk of {} bytes cannot hold the {n} rows its header announces",
            bytes.len()
        )));
    }
    let (body, trailer) = bytes.split_at(bytes.len() - TRAILER);
    let stored = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let actual = crc32fast::hash(body);
    if stored != actual {
        return Err(corrupt(format!(
            "crc mismatch (stored {stored:08x}, computed {actual:08x})"
        )));
    }
    let words = |column: usize| {
        let start = HEADER + column * 8 * n;
        body[start..start + 8 * n]
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    };
    let floats = |column: usize| words(column).map(f64::from_bits).collect::<Vec<f64>>();
    Ok(Candles {
        ts: words(0).map(|w| w as i64).collect(),
        open: floats(1),
        high: floats(2),
        low: floats(3),
        close: floats(4),
        volume: floats(5),
    })
}

/// Bytes the decoded form of `rows` rows takes in memory (cache budget).
pub fn decoded_bytes(rows: usize) -> usize {
    rows * ROW_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(c: &Candles) -> Vec<Vec<u64>> {
        [&c.open, &c.high, &c.low, &c.close, &c.volume]
            .iter()
            .map(|col| col.iter().map(|v| v.to_bits()).collect())
            .collect()
    }

    fn odd() -> Candles {
        let mut c = Candles::new();
        c.push(
            i64::MIN,
            0.1 + 0.2,
            f64::MAX,
            -0.0,
            0.0,
            f64::MIN_POSITIVE / 4.0,
        );
        c.push(-1, -0.0, 1e-310, -1e-310, 5e-324, f64::MIN_POSITIVE);
        c.push(
            0,
            1.0 / 3.0,
            2.0 / 3.0,
            f64::EPSILON,
            -f64::MAX,
            123_456.789,
        );
        c.push(i64::MAX, f64::INFINITY, f64::NEG_INFINITY, 7.0, 8.0, 9.0);
        c
    }

    #[test]
    fn round_trip_is_bit_exact() {
        for c in [Candles::new(), odd()] {
            let bytes = encode(&c).unwrap();
            assert_eq!(bytes.len(), 12 + 48 * c.len());
            assert_eq!(&bytes[..4], b"SBC1");
            let back = decode("k", &bytes).unwrap();
            assert_eq!(back.ts, c.ts);
            assert_eq!(bits(&back), bits(&c));
        }
        // NaN payloads survive too, though validation never lets one in.
        let mut c = Candles::new();
        let nan = f64::from_bits(0x7ff8_0000_dead_beef);
        c.push(1, nan, nan, nan, nan, nan);
        assert_eq!(bits(&decode("k", &encode(&c).unwrap()).unwrap()), bits(&c));
    }

    #[test]
    fn corruption_is_detected_and_names_the_key() {
        let bytes = encode(&odd()).unwrap();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            let e = decode("p:candles:X:1h:3", &bad).unwrap_err();
            assert!(matches!(e, StoreError::Corrupt { ref key, .. } if key == "p:candles:X:1h:3"));
        }
        for len in [0, 3, 11, bytes.len() - 1] {
            let e = decode("k", &bytes[..len]).unwrap_err();
            assert!(matches!(e, StoreError::Corrupt { .. }), "{len}: {e}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode("k", &longer).is_err());
        let e = decode("k", b"SBC2\0\0\0\0\0\0\0\0").unwrap_err();
        assert!(e.to_string().contains("magic"), "{e}");
        let mut bad = bytes;
        let last = bad.len() - 20;
        bad[last] ^= 0x80;
        assert!(decode("k", &bad).unwrap_err().to_string().contains("crc"));
    }

    #[test]
    fn mismatched_columns_are_refused() {
        let mut c = odd();
        c.close.pop();
        assert!(matches!(encode(&c), Err(StoreError::Invalid { .. })));
    }
}
