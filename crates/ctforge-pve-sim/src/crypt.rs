//! SHA-256-crypt (`$5$salt$hash`, Ulrich Drepper's "Unix crypt using SHA-256", default 5000
//! rounds): what Proxmox's `PVE::Tools::encrypt_pw` stores as a VM's `cipassword`, and what a
//! guest's `/etc/shadow` accepts when cloud-init hands it over, so the real VM backend's
//! guests log in with the password given to the API.

use sha2::{Digest as _, Sha256};

/// crypt(3)'s base-64 alphabet.
const ALPHABET: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The order in which the digest's bytes are encoded, three at a time.
const ORDER: [(usize, usize, usize); 10] = [
    (0, 10, 20),
    (21, 1, 11),
    (12, 22, 2),
    (3, 13, 23),
    (24, 4, 14),
    (15, 25, 5),
    (6, 16, 26),
    (27, 7, 17),
    (18, 28, 8),
    (9, 19, 29),
];

/// `password` hashed with `salt` (at most 16 characters are used, as crypt(3) does):
/// `$5$<salt>$<43 characters>`.
pub fn sha256_crypt(password: &str, salt: &str) -> String {
    let pw = password.as_bytes();
    let salt: String = salt.chars().take(16).collect();
    let s = salt.as_bytes();
    let b = Sha256::new()
        .chain_update(pw)
        .chain_update(s)
        .chain_update(pw)
        .finalize();
    let mut a = Sha256::new().chain_update(pw).chain_update(s);
    a.update(repeat(&b, pw.len()));
    let mut n = pw.len();
    while n > 0 {
        if n & 1 == 1 {
            a.update(b);
        } else {
            a.update(pw);
        }
        n >>= 1;
    }
    let mut digest = a.finalize();
    let mut dp = Sha256::new();
    for _ in 0..pw.len() {
        dp.update(pw);
    }
    let p = repeat(&dp.finalize(), pw.len());
    let mut ds = Sha256::new();
    for _ in 0..16 + usize::from(digest[0]) {
        ds.update(s);
    }
    let s_bytes = repeat(&ds.finalize(), s.len());
    for round in 0..5000 {
        let mut c = Sha256::new();
        if round & 1 == 1 {
            c.update(&p);
        } else {
            c.update(digest);
        }
        if round % 3 != 0 {
            c.update(&s_bytes);
        }
        if round % 7 != 0 {
            c.update(&p);
        }
        if round & 1 == 1 {
            c.update(digest);
        } else {
            c.update(&p);
        }
        digest = c.finalize();
    }
    let mut out = format!("$5${salt}$");
    for (x, y, z) in ORDER {
        encode(&mut out, digest[x], digest[y], digest[z], 4);
    }
    encode(&mut out, 0, digest[31], digest[30], 3);
    out
}

/// `block` repeated to `len` bytes.
fn repeat(block: &[u8], len: usize) -> Vec<u8> {
    block.iter().copied().cycle().take(len).collect()
}

fn encode(out: &mut String, b2: u8, b1: u8, b0: u8, chars: usize) {
    let mut w = (u32::from(b2) << 16) | (u32::from(b1) << 8) | u32::from(b0);
    for _ in 0..chars {
        out.push(char::from(ALPHABET[(w & 0x3f) as usize]));
        w >>= 6;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_glibc_and_openssl() {
        // `openssl passwd -5 -salt saltstring 'Hello world!'` (also the specification's vector).
        assert_eq!(
            sha256_crypt("Hello world!", "saltstring"),
            "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"
        );
        assert_eq!(
            sha256_crypt("wizard-pass-1", "abcdefgh"),
            "$5$abcdefgh$nikd6/Q7Y2sKzHPbK.y9Ffu45lk639JhoBBzF/hK0q3"
        );
        // Salts are cut at 16 characters; a long password spans several digest blocks.
        let long = "x".repeat(70);
        assert!(sha256_crypt(&long, "0123456789abcdefXYZ").starts_with("$5$0123456789abcdef$"));
    }
}
