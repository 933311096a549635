//! Secrets from the operating system's generator, and comparisons that take the same time
//! whatever the input.
//!
//! Everything an attacker must not guess — the JWT signing secret, generated passwords, API
//! keys, password salts — comes from [`getrandom`] (the kernel's CSPRNG: `getrandom(2)` on
//! Linux), never from a fast PRNG such as `fastrand`, whose state can be recovered from a few
//! outputs. A failure of the generator is an error, never a fallback to something weaker.
//!
//! Text secrets use [`ALPHABET`] (ASCII letters and digits: safe in a URL, a header, a shell
//! and a TOML string), drawn without bias by rejection sampling.

use subtle::ConstantTimeEq;

/// The characters of text secrets: 62 letters and digits, ~5.95 bits each.
pub const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Length of a generated JWT signing secret (~357 bits).
pub const JWT_SECRET_LEN: usize = 60;
/// Length of a generated password (~143 bits).
pub const PASSWORD_LEN: usize = 24;
/// Length of a generated API key after its prefix (~238 bits).
pub const API_KEY_LEN: usize = 40;
/// Prefix of generated API keys, so that a leaked one is recognisable (secret scanners).
pub const API_KEY_PREFIX: &str = "tfk_";

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random generator failed: {0}")]
pub struct SecretError(getrandom::Error);

/// `N` bytes from the operating system's generator.
pub fn bytes<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(SecretError)?;
    Ok(out)
}

/// `len` characters of [`ALPHABET`], each uniform: bytes ≥ 248 (= 4 × 62) are drawn again,
/// so that `byte % 62` favours no character.
pub fn text(len: usize) -> Result<String, SecretError> {
    const LIMIT: u8 = (256 - 256 % ALPHABET.len()) as u8;
    let mut out = String::with_capacity(len);
    let mut pool = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut pool).map_err(SecretError)?;
        for &b in pool.iter().filter(|&&b| b < LIMIT) {
            if out.len() == len {
                break;
            }
            out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
        }
    }
    Ok(out)
}

/// A JWT signing secret.
pub fn jwt_secret() -> Result<String, SecretError> {
    text(JWT_SECRET_LEN)
}

/// A password for a generated user.
pub fn password() -> Result<String, SecretError> {
    text(PASSWORD_LEN)
}

/// An API key: `tfk_` and 40 characters.
pub fn api_key() -> Result<String, SecretError> {
    Ok(format!("{API_KEY_PREFIX}{}", text(API_KEY_LEN)?))
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths only (not on where
/// they first differ).
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_alphabet(s: &str) -> bool {
        s.bytes().all(|c| ALPHABET.contains(&c))
    }

    #[test]
    fn generated_secrets_differ_and_have_their_length_and_alphabet() {
        let (a, b) = (jwt_secret().unwrap(), jwt_secret().unwrap());
        assert_ne!(a, b);
        assert_eq!((a.len(), b.len()), (JWT_SECRET_LEN, JWT_SECRET_LEN));
        assert!(in_alphabet(&a) && in_alphabet(&b), "{a} {b}");
        let (p, q) = (password().unwrap(), password().unwrap());
        assert_ne!(p, q);
        assert_eq!((p.len(), q.len()), (PASSWORD_LEN, PASSWORD_LEN));
        assert!(in_alphabet(&p) && in_alphabet(&q), "{p} {q}");
        let (k, l) = (api_key().unwrap(), api_key().unwrap());
        assert_ne!(k, l);
        for key in [&k, &l] {
            let rest = key.strip_prefix(API_KEY_PREFIX).expect("prefix");
            assert_eq!(rest.len(), API_KEY_LEN);
            assert!(in_alphabet(rest), "{key}");
        }
        assert_ne!(bytes::<32>().unwrap(), bytes::<32>().unwrap());
        assert_eq!(text(0).unwrap(), "");
        assert_eq!(text(1000).unwrap().len(), 1000);
    }

    #[test]
    fn every_character_is_drawn_about_equally() {
        // 62,000 characters: each expected 1,000 times (σ ≈ 31); a biased draw (e.g. `% 62`
        // without rejection favours the first 8 by 25 %) lands far outside 800..1200.
        let s = text(62_000).unwrap();
        let mut counts = [0u32; 256];
        for c in s.bytes() {
            counts[c as usize] += 1;
        }
        for &c in ALPHABET {
            let n = counts[c as usize];
            assert!((800..1200).contains(&n), "{} drawn {n} times", c as char);
        }
    }

    #[test]
    fn equal_compares_whole_values() {
        assert!(equal(b"abc", b"abc"));
        assert!(!equal(b"abc", b"abd"));
        assert!(!equal(b"abc", b"ab"));
        assert!(equal(b"", b""));
    }
}
