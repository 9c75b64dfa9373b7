// Shared test helpers.

/** The Rust tests' xorshift random walk (u64 arithmetic through BigInt). */
export function series(len, seed) {
  const MASK = (1n << 64n) - 1n;
  let s = BigInt(seed) & MASK;
  let price = 100.0;
  const out = [];
  for (let i = 0; i < len; i++) {
    s ^= (s << 13n) & MASK;
    s ^= s >> 7n;
    s ^= (s << 17n) & MASK;
    const u = Number(s >> 11n) / 2 ** 53;
    price += (u - 0.5) * 3.7;
    out.push(price);
  }
  return out;
}

/** Bit-exact equality, NaN == NaN, -0 != 0. */
export function same(a, b) {
  return Object.is(a, b);
}
