//! Numbers written into a `String` exactly as `format!` writes them, without its machinery.
//!
//! Why: every signal and decision carries reasoning text and every message an id, so the
//! stages format a few numbers per message. Through `format!`, a `{:.2}` float cost about a
//! thousand instructions (grisu's exact mode, then padding) and an id a few hundred more in
//! growing its string; a backtest spent a third of its time there. These write the same bytes:
//! the tests compare them with `format!` over millions of values.

use std::fmt;

/// Largest magnitude written here; beyond it (and for NaN and infinities) `format!` is used.
/// Below it, `x * 10^prec` rounded is below 10^18 and fits a `u64`.
const FAST_LIMIT: f64 = 1e14;

/// `x` with `prec` (at most 4) decimals, as `format!("{x:.prec$}")` writes it: the exact
/// binary value rounded half to even, a `-` for every negative value (also `-0.00`).
pub fn push_fixed(out: &mut String, x: f64, prec: usize) {
    let mut buf = [0u8; 24];
    match fixed_digits(x, prec, &mut buf) {
        Some(s) => out.push_str(s),
        None => fmt::Write::write_fmt(out, format_args!("{x:.prec$}")).expect("writing to a String cannot fail"),
    }
}

/// [`push_fixed`]'s text in `buf`, or `None` where `format!` must do it (NaN, infinities,
/// magnitudes from [`FAST_LIMIT`] on, more than 4 decimals).
fn fixed_digits(x: f64, prec: usize, buf: &mut [u8; 24]) -> Option<&str> {
    // NaN and the infinities are written by `format!`.
    if prec > 4 || !x.is_finite() || x.abs() >= FAST_LIMIT {
        return None;
    }
    let pow = 10u64.pow(prec as u32);
    let scaled = scaled_round_half_even(x.abs(), prec);
    // Written backwards from the end: decimals, point, integer part, sign.
    let mut i = buf.len();
    let mut put = |b: u8| {
        i -= 1;
        buf[i] = b;
    };
    let (mut int, mut frac) = (scaled / pow, scaled % pow);
    for _ in 0..prec {
        put(b'0' + (frac % 10) as u8);
        frac /= 10;
    }
    if prec > 0 {
        put(b'.');
    }
    loop {
        put(b'0' + (int % 10) as u8);
        int /= 10;
        if int == 0 {
            break;
        }
    }
    if x.is_sign_negative() {
        put(b'-');
    }
    // At most 1 + 14 + 1 + 4 ASCII bytes.
    std::str::from_utf8(&buf[i..]).ok()
}

/// `x * 10^prec` rounded half to even, computed exactly: `x = m * 2^e` with an integer `m`.
/// `x` is finite, non-negative and below [`FAST_LIMIT`]; `prec` at most 4.
fn scaled_round_half_even(x: f64, prec: usize) -> u64 {
    let bits = x.to_bits();
    let exp_bits = ((bits >> 52) & 0x7ff) as i32;
    let frac_bits = bits & ((1u64 << 52) - 1);
    // Subnormals have no implicit bit and the smallest exponent.
    let (m, e) = if exp_bits == 0 { (frac_bits, -1074) } else { (frac_bits | (1u64 << 52), exp_bits - 1075) };
    let num = u128::from(m) * u128::from(10u64.pow(prec as u32));
    if e >= 0 {
        // An integer below FAST_LIMIT: no rounding, and the shift stays below 2^64.
        return (num << e) as u64;
    }
    let s = (-e) as u32;
    if s >= 127 {
        // x < 2^53 * 2^-127: far below half a unit of the last decimal.
        return 0;
    }
    let q = num >> s;
    let r = num & ((1u128 << s) - 1);
    let half = 1u128 << (s - 1);
    let up = r > half || (r == half && q & 1 == 1);
    (q + u128::from(up)) as u64
}

/// `v` in decimal, as `format!("{v}")`.
pub fn push_u64(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[i..]).expect("ASCII digits"));
}

/// `v` in decimal, as `format!("{v}")`.
pub fn push_i64(out: &mut String, v: i64) {
    if v < 0 {
        out.push('-');
    }
    push_u64(out, v.unsigned_abs());
}

/// Length of `v` in decimal, sign included (to size a string before writing it).
pub fn i64_len(v: i64) -> usize {
    let mut n = v.unsigned_abs();
    let mut len = usize::from(v < 0) + 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

/// `x` with `prec` decimals as a `Display` value, for `format!` and `write!`: written by
/// [`push_fixed`], so `format!("{}", Fixed(x, 2))` is `format!("{x:.2}")`, only cheaper.
/// Width, fill and other flags of the surrounding format are not applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fixed(pub f64, pub usize);

impl fmt::Display for Fixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (x, prec) = (self.0, self.1);
        let mut buf = [0u8; 24];
        match fixed_digits(x, prec, &mut buf) {
            Some(s) => f.write_str(s),
            None => write!(f, "{x:.prec$}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(x: f64, prec: usize) -> String {
        let mut s = String::new();
        push_fixed(&mut s, x, prec);
        s
    }

    /// A small deterministic generator (xorshift64*): the test needs many values, not secrets.
    struct Gen(u64);
    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn fixed_is_format_on_edge_values() {
        let edges = [
            0.0,
            -0.0,
            0.5,
            1.5,
            2.5,
            0.125,
            0.375,
            0.005,
            0.015,
            -0.005,
            -0.004,
            0.045,
            0.995,
            9.995,
            99.995,
            1e-300,
            5e-324,
            -5e-324,
            1e13,
            99_999_999_999_999.99,
            1e14,
            -1e14,
            1e15,
            1e300,
            f64::MAX,
            f64::MIN,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.1,
            0.2,
            0.3,
            1.0 / 3.0,
            2.0 / 3.0,
            0.00005,
            0.00015,
        ];
        for x in edges {
            for prec in 0..=6 {
                assert_eq!(fixed(x, prec), format!("{x:.prec$}"), "{x:?} with {prec} decimals");
                assert_eq!(Fixed(x, prec).to_string(), format!("{x:.prec$}"));
            }
        }
    }

    #[test]
    fn fixed_is_format_on_random_values() {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        for i in 0..400_000u32 {
            let r = g.next();
            // Every bit pattern, values in the ranges the stages print, and exact ties.
            let x = match i % 4 {
                0 => f64::from_bits(r),
                1 => (r >> 11) as f64 / (1u64 << 53) as f64 * 10f64.powi((r % 12) as i32 - 4),
                2 => ((r >> 11) % 100_000_000) as f64 / 1000.0 + 0.0005 * ((r & 1) as f64),
                _ => ((r >> 20) % 1_000_000) as f64 / 8.0 * if r & 2 == 0 { 1.0 } else { -1.0 },
            };
            for prec in [0, 1, 2, 4] {
                assert_eq!(fixed(x, prec), format!("{x:.prec$}"), "{x:?} with {prec} decimals");
            }
        }
    }

    #[test]
    fn integers_are_format() {
        let mut g = Gen(7);
        let mut values = vec![0i64, 1, -1, 9, 10, -10, i64::MAX, i64::MIN, 1_600_000_000_000];
        values.extend((0..100_000).map(|_| g.next() as i64 >> (g.next() % 64)));
        for v in values {
            let mut s = String::new();
            push_i64(&mut s, v);
            assert_eq!(s, v.to_string());
            assert_eq!(i64_len(v), s.len(), "{v}");
        }
    }
}
