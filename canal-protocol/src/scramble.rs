//! Canal's password check: MySQL 4.1 "scramble411" over the handshake seed.
//!
//! The server stores `canal.passwd` = hex of `SHA1(SHA1(password))` (MySQL's
//! `PASSWORD()` value without the leading `*`). On connect it sends a random
//! seed; the client answers with the lowercase hex of
//! `SHA1(seed ‖ SHA1(SHA1(password))) XOR SHA1(password)`, which proves it
//! knows `SHA1(password)` without sending it. The server XORs the token with
//! `SHA1(seed ‖ stored)` to recover `SHA1(password)`, hashes it once more and
//! compares with the stored value in constant time.

use std::fmt;

use sha1::{Digest, Sha1};

/// Length of a SHA-1 digest, and so of a scramble token and a stored hash.
pub const SCRAMBLE_LEN: usize = 20;

fn sha1(parts: &[&[u8]]) -> [u8; SCRAMBLE_LEN] {
    let mut hasher = Sha1::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

fn xor(a: &[u8; SCRAMBLE_LEN], b: &[u8; SCRAMBLE_LEN]) -> [u8; SCRAMBLE_LEN] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// Compares two digests in time independent of where they differ.
fn constant_time_eq(a: &[u8; SCRAMBLE_LEN], b: &[u8; SCRAMBLE_LEN]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The client's token: `SHA1(seed ‖ SHA1(SHA1(password))) XOR SHA1(password)`.
///
/// `password` is the plaintext's UTF-8 bytes. An empty password is scrambled
/// like any other (the Java client does so for `""`).
pub fn scramble411(password: impl AsRef<[u8]>, seed: &[u8]) -> [u8; SCRAMBLE_LEN] {
    let stage1 = sha1(&[password.as_ref()]);
    let stage2 = sha1(&[&stage1]);
    xor(&sha1(&[seed, &stage2]), &stage1)
}

/// The token as Canal clients put it in `ClientAuth.password`: 40 lowercase
/// hex characters.
pub fn scramble411_hex(password: impl AsRef<[u8]>, seed: &[u8]) -> String {
    hex::encode(scramble411(password, seed))
}

/// Errors from parsing a stored `canal.passwd` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoredPasswordError {
    /// The value is not 40 hex digits (note: no leading `*`).
    #[error("canal.passwd must be 40 hex digits (SHA1(SHA1(password)), without '*'), got {len} characters")]
    InvalidHex {
        /// Length of the rejected value, in characters.
        len: usize,
    },
}

/// A stored password hash, `SHA1(SHA1(password))`, as configured by
/// `canal.passwd`. Its `Debug` output does not show the hash.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredPassword([u8; SCRAMBLE_LEN]);

impl fmt::Debug for StoredPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoredPassword(<redacted>)")
    }
}

impl StoredPassword {
    /// Parses a `canal.passwd` value: exactly 40 hex digits of either case.
    pub fn from_hex(hex_digits: &str) -> Result<Self, StoredPasswordError> {
        let mut hash = [0u8; SCRAMBLE_LEN];
        hex::decode_to_slice(hex_digits, &mut hash).map_err(|_| {
            StoredPasswordError::InvalidHex {
                len: hex_digits.chars().count(),
            }
        })?;
        Ok(Self(hash))
    }

    /// Hashes a plaintext password the way `canal.passwd` is produced.
    pub fn from_plaintext(password: impl AsRef<[u8]>) -> Self {
        Self(sha1(&[&sha1(&[password.as_ref()])]))
    }

    /// The `canal.passwd` form: 40 uppercase hex digits, as MySQL prints it.
    pub fn to_hex(&self) -> String {
        hex::encode_upper(self.0)
    }

    /// The raw 20-byte hash.
    pub fn as_bytes(&self) -> &[u8; SCRAMBLE_LEN] {
        &self.0
    }

    /// Checks a raw 20-byte token against this hash for `seed`; the final
    /// comparison is constant-time.
    pub fn verify_token(&self, seed: &[u8], token: &[u8; SCRAMBLE_LEN]) -> bool {
        let stage1 = xor(token, &sha1(&[seed, &self.0]));
        constant_time_eq(&sha1(&[&stage1]), &self.0)
    }

    /// Checks the `ClientAuth.password` bytes (hex text of the token, either
    /// case) against this hash for `seed`.
    pub fn verify(&self, seed: &[u8], received: &[u8]) -> Result<(), AuthError> {
        if received.is_empty() {
            return Err(AuthError::MissingPassword);
        }
        let mut token = [0u8; SCRAMBLE_LEN];
        hex::decode_to_slice(received, &mut token).map_err(|_| AuthError::MalformedToken {
            len: received.len(),
        })?;
        if self.verify_token(seed, &token) {
            Ok(())
        } else {
            Err(AuthError::WrongPassword)
        }
    }
}

/// Why an authentication attempt was refused. Canal answers every case with
/// error 400 `auth failed for user:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A user is configured and the client sent a different name.
    #[error("unknown user")]
    UnknownUser,
    /// A password is configured and the client sent none.
    #[error("password required")]
    MissingPassword,
    /// The password field is not 40 hex digits. (Canal throws here and closes
    /// the connection without a reply.)
    #[error("password is not a 40-hex-digit scramble token ({len} bytes)")]
    MalformedToken {
        /// Length of the received password field.
        len: usize,
    },
    /// The token does not match the stored hash.
    #[error("wrong password")]
    WrongPassword,
}

/// The server's credential check, configured from `canal.user` and
/// `canal.passwd`.
///
/// Rules (Canal's `auth`): if the configured user is empty or equals the
/// received username, then an empty configured password accepts anything,
/// otherwise the received password must be a valid scramble token for the
/// seed; any other username is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticator {
    user: String,
    password: Option<StoredPassword>,
}

impl Authenticator {
    /// Builds the check from `canal.user` and `canal.passwd` (hex; empty means
    /// no password). Fails if a non-empty `passwd_hex` is not 40 hex digits.
    pub fn new(user: impl Into<String>, passwd_hex: &str) -> Result<Self, StoredPasswordError> {
        let password = if passwd_hex.is_empty() {
            None
        } else {
            Some(StoredPassword::from_hex(passwd_hex)?)
        };
        Ok(Self {
            user: user.into(),
            password,
        })
    }

    /// Builds the check from an already parsed hash (`None` = no password).
    pub fn with_password(user: impl Into<String>, password: Option<StoredPassword>) -> Self {
        Self {
            user: user.into(),
            password,
        }
    }

    /// The configured user name (empty = any).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// True when a user is configured but no password, which Canal 1.1.8
    /// refuses at start-up.
    pub fn user_without_password(&self) -> bool {
        !self.user.is_empty() && self.password.is_none()
    }

    /// Checks a ClientAuth's `username` and `password` against the `seed` sent
    /// in this connection's handshake.
    pub fn authenticate(
        &self,
        username: &str,
        password: &[u8],
        seed: &[u8],
    ) -> Result<(), AuthError> {
        if !self.user.is_empty() && self.user != username {
            return Err(AuthError::UnknownUser);
        }
        match &self.password {
            None => Ok(()),
            Some(stored) => stored.verify(seed, password),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

    #[test]
    fn worked_example_from_reference() {
        assert_eq!(
            hex::encode(sha1(&[b"123456"])),
            "7c4a8d09ca3762af61e59520943dc26494f8941b"
        );
        let stored = StoredPassword::from_plaintext("123456");
        assert_eq!(stored.to_hex(), "6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9");
        assert_eq!(
            hex::encode(sha1(&[&SEED, stored.as_bytes()])),
            "ecacbbe2824f99f689eeabc6d517ba2961527716"
        );
        assert_eq!(
            scramble411_hex("123456", &SEED),
            "90e636eb4878fb59e80b3ee6412a784df5aae30d"
        );
        assert_eq!(
            stored.verify(&SEED, b"90e636eb4878fb59e80b3ee6412a784df5aae30d"),
            Ok(())
        );
        // Hex digits of either case are accepted on both sides.
        assert_eq!(
            StoredPassword::from_hex("6bb4837eb74329105ee4568dda7dc67ed2ca2ad9").unwrap(),
            stored
        );
        assert_eq!(
            stored.verify(&SEED, b"90E636EB4878FB59E80B3EE6412A784DF5AAE30D"),
            Ok(())
        );
    }

    #[test]
    fn other_known_stored_values() {
        for (plain, hash) in [
            ("canal", "E3619321C1A937C46A0D8BD1DAC39F93B27D4458"),
            ("admin", "4ACFE3202A5FF5CF467898FC58AAB1D615029441"),
            ("", "BE1BDEC0AA74B4DCB079943E70528096CCA985F8"),
        ] {
            let stored = StoredPassword::from_plaintext(plain);
            assert_eq!(stored.to_hex(), hash, "{plain:?}");
            let token = scramble411_hex(plain, &SEED);
            assert_eq!(stored.verify(&SEED, token.as_bytes()), Ok(()), "{plain:?}");
            // A token made for another seed does not verify.
            let other = scramble411_hex(plain, b"87654321");
            assert_eq!(
                stored.verify(&SEED, other.as_bytes()),
                Err(AuthError::WrongPassword)
            );
        }
    }

    #[test]
    fn authenticator_rules() {
        let token = scramble411_hex("123456", &SEED);
        let auth = Authenticator::new("canal", "6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9").unwrap();
        assert_eq!(auth.authenticate("canal", token.as_bytes(), &SEED), Ok(()));
        assert_eq!(
            auth.authenticate("other", token.as_bytes(), &SEED),
            Err(AuthError::UnknownUser)
        );
        assert_eq!(
            auth.authenticate("canal", b"", &SEED),
            Err(AuthError::MissingPassword)
        );
        assert_eq!(
            auth.authenticate("canal", b"123456", &SEED),
            Err(AuthError::MalformedToken { len: 6 })
        );
        assert_eq!(
            auth.authenticate("canal", &token.as_bytes()[..38], &SEED),
            Err(AuthError::MalformedToken { len: 38 })
        );
        let wrong = scramble411_hex("1234567", &SEED);
        assert_eq!(
            auth.authenticate("canal", wrong.as_bytes(), &SEED),
            Err(AuthError::WrongPassword)
        );
        // The scramble of "" is not the same as sending nothing.
        let empty = scramble411_hex("", &SEED);
        assert_eq!(
            auth.authenticate("canal", empty.as_bytes(), &SEED),
            Err(AuthError::WrongPassword)
        );

        // Empty configured user: any name, password still checked.
        let any_user = Authenticator::new("", "6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9").unwrap();
        assert_eq!(any_user.authenticate("x", token.as_bytes(), &SEED), Ok(()));
        assert_eq!(
            any_user.authenticate("x", b"", &SEED),
            Err(AuthError::MissingPassword)
        );

        // Empty configured password: whatever the client sends (canal-python
        // sends plaintext) is accepted, but the user must still match.
        let open = Authenticator::new("canal", "").unwrap();
        assert!(open.user_without_password());
        assert_eq!(open.authenticate("canal", b"plain", &SEED), Ok(()));
        assert_eq!(open.authenticate("canal", b"", &SEED), Ok(()));
        assert_eq!(
            open.authenticate("nobody", b"", &SEED),
            Err(AuthError::UnknownUser)
        );
        let nobody = Authenticator::new("", "").unwrap();
        assert!(!nobody.user_without_password());
        assert_eq!(nobody.authenticate("anyone", b"x", &SEED), Ok(()));
    }

    #[test]
    fn stored_password_parse_errors() {
        for bad in [
            "*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9",
            "6BB4837EB74329105EE4568DDA7DC67ED2CA2AD",
            "6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9AA",
            "ZZB4837EB74329105EE4568DDA7DC67ED2CA2AD9",
        ] {
            assert!(StoredPassword::from_hex(bad).is_err(), "{bad}");
            assert!(Authenticator::new("canal", bad).is_err(), "{bad}");
        }
        assert_eq!(
            format!("{:?}", StoredPassword::from_plaintext("x")),
            "StoredPassword(<redacted>)"
        );
    }

    #[test]
    fn constant_time_eq_detects_any_difference() {
        let a = [7u8; SCRAMBLE_LEN];
        assert!(constant_time_eq(&a, &a));
        for i in 0..SCRAMBLE_LEN {
            let mut b = a;
            b[i] ^= 0x80;
            assert!(!constant_time_eq(&a, &b));
        }
    }
}
