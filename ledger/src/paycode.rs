//! Customer-presented payment codes (WeChat micropay, Alipay barcode): a one-time token the payer's
//! app makes offline with the device key bound to the wallet, and the merchant charges.
//!
//! Token text: `spc1:` followed by 208 lower-case hex digits encoding 104 bytes —
//! wallet id (16, big-endian), nonce (16), expiry in log-time nanoseconds (8, big-endian), and the
//! Ed25519 signature (64) by the device key over [`Token::signed_message`]:
//! `"suanpan/paycode/v1"` ‖ wallet (16) ‖ nonce (16) ‖ expiry (8, big-endian).
//!
//! Pure (parsing and verification only), so every replica reaches the same verdict.

use crate::types::Id;

/// Prefix of the token text (the format version).
pub const TOKEN_PREFIX: &str = "spc1:";
/// Length of the token text, in characters.
pub const TOKEN_CHARS: usize = TOKEN_PREFIX.len() + 2 * TOKEN_BYTES;
const TOKEN_BYTES: usize = 16 + 16 + 8 + 64;
const DOMAIN: &[u8] = b"suanpan/paycode/v1";

/// Longest validity a code may claim, in seconds of log time: its nonce is kept until it
/// expires, so this bounds how long the ledger remembers consumed nonces.
pub const VALIDITY_SECONDS_MAX: u64 = 600;
/// Validity of a code unless the app asks otherwise.
pub const VALIDITY_SECONDS_DEFAULT: u64 = 60;

/// A decoded payment code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub wallet: Id,
    pub nonce: [u8; 16],
    pub expires_ns: u64,
    pub signature: [u8; 64],
}

/// Why a token's text is not a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("a payment code starts with {TOKEN_PREFIX}")]
    Prefix,
    #[error("a payment code is {TOKEN_CHARS} characters")]
    Length,
    #[error("a payment code is hex digits after its prefix")]
    Hex,
}

impl Token {
    /// The bytes the device key signs.
    pub fn signed_message(wallet: Id, nonce: &[u8; 16], expires_ns: u64) -> Vec<u8> {
        let mut m = Vec::with_capacity(DOMAIN.len() + 40);
        m.extend_from_slice(DOMAIN);
        m.extend_from_slice(&wallet.to_bytes());
        m.extend_from_slice(nonce);
        m.extend_from_slice(&expires_ns.to_be_bytes());
        m
    }

    pub fn encode(&self) -> String {
        let mut b = Vec::with_capacity(TOKEN_BYTES);
        b.extend_from_slice(&self.wallet.to_bytes());
        b.extend_from_slice(&self.nonce);
        b.extend_from_slice(&self.expires_ns.to_be_bytes());
        b.extend_from_slice(&self.signature);
        let mut s = String::with_capacity(TOKEN_CHARS);
        s.push_str(TOKEN_PREFIX);
        for byte in b {
            s.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
            s.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
        }
        s
    }

    pub fn parse(s: &str) -> Result<Token, TokenError> {
        let hex = s.strip_prefix(TOKEN_PREFIX).ok_or(TokenError::Prefix)?;
        if hex.len() != 2 * TOKEN_BYTES {
            return Err(TokenError::Length);
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            _ => Err(TokenError::Hex),
        };
        let mut b = [0u8; TOKEN_BYTES];
        for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
            b[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
        }
        Ok(Token {
            wallet: Id::from_bytes(b[..16].try_into().expect("16 bytes")),
            nonce: b[16..32].try_into().expect("16 bytes"),
            expires_ns: u64::from_be_bytes(b[32..40].try_into().expect("8 bytes")),
            signature: b[40..].try_into().expect("64 bytes"),
        })
    }

    /// Whether `public_key` signed this token (strict verification: no malleable signatures, no
    /// weak keys).
    pub fn verify(&self, public_key: &[u8; 32]) -> bool {
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public_key) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(&self.signature);
        key.verify_strict(
            &Token::signed_message(self.wallet, &self.nonce, self.expires_ns),
            &sig,
        )
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer;

    #[test]
    fn tokens_round_trip_and_verify() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let (wallet, nonce, exp) = (Id(0xABCDEF), [3u8; 16], 1_800_000_000_000_000_000);
        let sig = key.sign(&Token::signed_message(wallet, &nonce, exp));
        let t = Token {
            wallet,
            nonce,
            expires_ns: exp,
            signature: sig.to_bytes(),
        };
        let s = t.encode();
        assert_eq!(s.len(), TOKEN_CHARS);
        assert_eq!(Token::parse(&s), Ok(t));
        assert!(t.verify(&key.verifying_key().to_bytes()));
        let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        assert!(!t.verify(&other.verifying_key().to_bytes()));
        let altered = Token {
            expires_ns: exp + 1,
            ..t
        };
        assert!(!altered.verify(&key.verifying_key().to_bytes()));
        assert_eq!(Token::parse("spc2:00"), Err(TokenError::Prefix));
        assert_eq!(Token::parse("spc1:00"), Err(TokenError::Length));
        assert_eq!(
            Token::parse(&s.to_uppercase().replace("SPC1", "spc1")),
            Err(TokenError::Hex)
        );
    }
}
