//! The encrypted envelope of a backup file: a passphrase stretched with Argon2id into an
//! AES-256-GCM key, and the archive sealed in 64 KiB chunks with the STREAM construction
//! (`aead::stream`, big-endian 32-bit counter, a last-chunk flag), so a file is never held in
//! memory whole and a truncated or reordered file fails to open instead of restoring a part.
//!
//! Layout: `MAGIC`, Argon2 memory (KiB), passes and lanes (u32 little-endian each), a 16-byte
//! salt, a 7-byte STREAM nonce prefix, then the chunks (64 KiB of plaintext + 16 bytes of tag
//! each; the last one shorter). The whole header is the associated data of every chunk, so a
//! changed parameter is detected like a changed byte of content.

use std::io::{self, Read, Write};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::stream::{DecryptorBE32, EncryptorBE32};
use aes_gcm::aead::{KeyInit, Payload};
use rand::RngCore;

/// The first bytes of every backup file.
pub const MAGIC: &[u8; 18] = b"ctforge-backup v1\n";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 7;
const HEADER_LEN: usize = MAGIC.len() + 12 + SALT_LEN + NONCE_LEN;
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;

/// The Argon2id cost of a new backup (the file records it, so opening needs no setting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub passes: u32,
    /// Lanes.
    pub lanes: u32,
}

impl Default for KdfCost {
    /// 64 MiB, 3 passes, 1 lane: RFC 9106's second recommended setting.
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            passes: 3,
            lanes: 1,
        }
    }
}

/// Upper bounds accepted when reading a header, so a crafted file cannot make a restore
/// allocate gigabytes or spin for hours before the passphrase is even checked.
const MAX_M_COST: u32 = 1024 * 1024;
const MAX_T_COST: u32 = 16;
const MAX_P_COST: u32 = 16;

/// Why a backup could not be sealed or opened.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CryptError {
    /// The file does not start like a ctforge backup.
    #[error("this is not a ctforge backup file (its header is missing or of another format)")]
    NotABackup,
    /// The header names Argon2 costs outside what ctforge writes.
    #[error("the backup's key derivation parameters are out of range; the file is damaged")]
    BadParameters,
    /// A chunk failed authentication: wrong passphrase, or the file was changed or cut short.
    #[error(
        "the backup cannot be decrypted: wrong passphrase, or the file is damaged or truncated"
    )]
    Decrypt,
    /// The key could not be derived.
    #[error("cannot derive the backup key: {0}")]
    Kdf(String),
}

impl From<CryptError> for io::Error {
    fn from(e: CryptError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

fn derive(passphrase: &[u8], salt: &[u8], m: u32, t: u32, p: u32) -> Result<Aes256Gcm, CryptError> {
    let params =
        argon2::Params::new(m, t, p, Some(32)).map_err(|e| CryptError::Kdf(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = [0u8; 32];
    argon
        .hash_password_into(passphrase, salt, &mut key)
        .map_err(|e| CryptError::Kdf(e.to_string()))?;
    let cipher = Aes256Gcm::new(GenericArray::from_slice(&key));
    key.fill(0);
    Ok(cipher)
}

/// A writer that seals everything written to it; [`EncryptWriter::finish`] seals the last
/// chunk and must be called, or the file will not open.
pub struct EncryptWriter<W: Write> {
    inner: W,
    header: Vec<u8>,
    stream: Option<EncryptorBE32<Aes256Gcm>>,
    buf: Vec<u8>,
}

impl<W: Write> EncryptWriter<W> {
    /// Writes the header (fresh salt and nonce) and returns the writer.
    pub fn new(mut inner: W, passphrase: &[u8], cost: KdfCost) -> Result<Self, io::Error> {
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut salt);
        rand::rng().fill_bytes(&mut nonce);
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        for v in [cost.memory_kib, cost.passes, cost.lanes] {
            header.extend_from_slice(&v.to_le_bytes());
        }
        header.extend_from_slice(&salt);
        header.extend_from_slice(&nonce);
        let cipher = derive(passphrase, &salt, cost.memory_kib, cost.passes, cost.lanes)?;
        inner.write_all(&header)?;
        Ok(Self {
            inner,
            header,
            stream: Some(EncryptorBE32::from_aead(
                cipher,
                GenericArray::from_slice(&nonce),
            )),
            buf: Vec::with_capacity(CHUNK * 2),
        })
    }

    fn seal_full_chunks(&mut self) -> io::Result<()> {
        // A chunk is sealed as "not last" only once more data follows it.
        while self.buf.len() > CHUNK {
            let stream = self
                .stream
                .as_mut()
                .ok_or_else(|| io::Error::other("backup stream already finished"))?;
            let sealed = stream
                .encrypt_next(Payload {
                    msg: &self.buf[..CHUNK],
                    aad: &self.header,
                })
                .map_err(|_| io::Error::other("backup encryption failed"))?;
            self.inner.write_all(&sealed)?;
            self.buf.drain(..CHUNK);
        }
        Ok(())
    }

    /// Seals the remaining data as the last chunk and returns the inner writer (flushed).
    pub fn finish(mut self) -> io::Result<W> {
        self.seal_full_chunks()?;
        let stream = self
            .stream
            .take()
            .ok_or_else(|| io::Error::other("backup stream already finished"))?;
        let sealed = stream
            .encrypt_last(Payload {
                msg: &self.buf,
                aad: &self.header,
            })
            .map_err(|_| io::Error::other("backup encryption failed"))?;
        self.inner.write_all(&sealed)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.seal_full_chunks()?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that opens a sealed stream; it returns an error instead of unauthenticated bytes
/// and, at the end, only reports EOF after the last chunk (flagged as last) was verified.
pub struct DecryptReader<R: Read> {
    inner: R,
    header: Vec<u8>,
    stream: Option<DecryptorBE32<Aes256Gcm>>,
    plain: Vec<u8>,
    pos: usize,
    lookahead: Option<u8>,
    finished: bool,
}

impl<R: Read> DecryptReader<R> {
    /// Reads and checks the header and derives the key.
    pub fn new(mut inner: R, passphrase: &[u8]) -> Result<Self, CryptError> {
        let mut header = vec![0u8; HEADER_LEN];
        inner
            .read_exact(&mut header)
            .map_err(|_| CryptError::NotABackup)?;
        if &header[..MAGIC.len()] != MAGIC {
            return Err(CryptError::NotABackup);
        }
        let word = |i: usize| {
            let at = MAGIC.len() + 4 * i;
            let mut b = [0u8; 4];
            b.copy_from_slice(&header[at..at + 4]);
            u32::from_le_bytes(b)
        };
        let (m, t, p) = (word(0), word(1), word(2));
        if m > MAX_M_COST || t > MAX_T_COST || p > MAX_P_COST || t == 0 || p == 0 {
            return Err(CryptError::BadParameters);
        }
        let salt_at = MAGIC.len() + 12;
        let salt = header[salt_at..salt_at + SALT_LEN].to_vec();
        let nonce = header[salt_at + SALT_LEN..HEADER_LEN].to_vec();
        let cipher = derive(passphrase, &salt, m, t, p)?;
        Ok(Self {
            inner,
            header,
            stream: Some(DecryptorBE32::from_aead(
                cipher,
                GenericArray::from_slice(&nonce),
            )),
            plain: Vec::new(),
            pos: 0,
            lookahead: None,
            finished: false,
        })
    }

    /// Whether the last chunk was read and verified.
    pub fn finished(&self) -> bool {
        self.finished
    }

    fn fill(&mut self, want: usize, out: &mut Vec<u8>) -> io::Result<()> {
        if let Some(b) = self.lookahead.take() {
            out.push(b);
        }
        while out.len() < want {
            let mut tmp = vec![0u8; want - out.len()];
            let n = self.inner.read(&mut tmp)?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&tmp[..n]);
        }
        Ok(())
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        let mut sealed = Vec::with_capacity(CHUNK + TAG);
        self.fill(CHUNK + TAG, &mut sealed)?;
        let mut one = [0u8; 1];
        let last = if sealed.len() < CHUNK + TAG {
            true
        } else {
            let n = loop {
                match self.inner.read(&mut one) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other?,
                }
            };
            if n == 1 {
                self.lookahead = Some(one[0]);
                false
            } else {
                true
            }
        };
        let payload = Payload {
            msg: &sealed,
            aad: &self.header,
        };
        self.plain = if last {
            let stream = self.stream.take().ok_or(CryptError::Decrypt)?;
            let plain = stream
                .decrypt_last(payload)
                .map_err(|_| CryptError::Decrypt)?;
            self.finished = true;
            plain
        } else {
            let stream = self.stream.as_mut().ok_or(CryptError::Decrypt)?;
            stream
                .decrypt_next(payload)
                .map_err(|_| CryptError::Decrypt)?
        };
        self.pos = 0;
        Ok(())
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.plain.len() {
            if self.finished {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = out.len().min(self.plain.len() - self.pos);
        out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn seal(data: &[u8], pass: &[u8]) -> Vec<u8> {
        let cost = KdfCost {
            memory_kib: 64,
            passes: 1,
            lanes: 1,
        };
        let mut w = EncryptWriter::new(Vec::new(), pass, cost).unwrap();
        for part in data.chunks(7_001) {
            w.write_all(part).unwrap();
        }
        w.finish().unwrap()
    }

    fn open(file: &[u8], pass: &[u8]) -> io::Result<Vec<u8>> {
        let mut r = DecryptReader::new(file, pass)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        assert!(r.finished());
        Ok(out)
    }

    #[test]
    fn round_trips_at_chunk_boundaries() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let file = seal(&data, b"correct horse");
            assert_eq!(open(&file, b"correct horse").unwrap(), data, "length {len}");
        }
    }

    #[test]
    fn wrong_passphrase_truncation_and_tampering_fail() {
        let data = vec![7u8; 2 * CHUNK + 5];
        let file = seal(&data, b"pass-one");
        assert!(open(&file, b"pass-two").is_err());
        // Cut after the first full chunk: the remaining chunk would pass as "last" only if
        // it had been sealed as last, which it was not.
        assert!(open(&file[..HEADER_LEN + CHUNK + TAG], b"pass-one").is_err());
        assert!(open(&file[..file.len() - 1], b"pass-one").is_err());
        let mut changed = file.clone();
        changed[HEADER_LEN + 100] ^= 1;
        assert!(open(&changed, b"pass-one").is_err());
        let mut params = file.clone();
        params[MAGIC.len()] ^= 1;
        assert!(open(&params, b"pass-one").is_err());
        assert!(matches!(
            DecryptReader::new(&b"not a backup at all, just some text here"[..], b"x"),
            Err(CryptError::NotABackup)
        ));
    }
}
