//! Tokens against cross-site request forgery: every form the portal renders
//! carries one (hidden field [`FIELD`]), and every form posted must bring
//! back a valid one, or nothing is done.
//!
//! A token is `ISSUED.MAC`: the time it was made (Unix seconds) and the
//! HMAC-SHA256, in hexadecimal, of that time and the user it was made for,
//! under a key drawn from the operating system's random generator when the
//! portal starts and never shown. Another site cannot read the portal's
//! pages, so it cannot get a token; a token is valid only for its user, for
//! [`MAX_AGE`] seconds, and only until the portal restarts (a form opened
//! before is refused with the words to reload it).

use std::time::{SystemTime, UNIX_EPOCH};

use ring::hmac;
use ring::rand::SystemRandom;

/// The name of the forms' hidden field carrying the token.
pub const FIELD: &str = "jeton";

/// How long a token stays valid: a working day, for a form left open.
pub const MAX_AGE: u64 = 12 * 3600;

/// A token issued this much later than now is refused (the clock went back).
const SKEW: u64 = 60;

/// What a token's MAC covers, besides its time and user: the purpose, so
/// that the key could sign nothing else.
const PURPOSE: &[u8] = b"mutu-portal form v1";

/// Why a form's token is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadToken {
    /// The form has no token.
    Missing,
    /// Not a token of this portal for this user: forged, made for another
    /// user, or made before the portal restarted.
    Invalid,
    /// A token of this user, older than [`MAX_AGE`].
    Expired,
}

impl BadToken {
    /// The reason, for the logs.
    pub fn reason(self) -> &'static str {
        match self {
            BadToken::Missing => "form without its token",
            BadToken::Invalid => "form token forged, of another user or of an earlier run",
            BadToken::Expired => "form token expired",
        }
    }
}

/// The key of this run of the portal.
pub struct Key(hmac::Key);

impl Key {
    /// A new key, from the operating system's random generator.
    pub fn random() -> Result<Self, ring::error::Unspecified> {
        hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new()).map(Key)
    }

    /// A token for `user`, issued at `now` (Unix seconds).
    pub fn token_at(&self, user: &str, now: u64) -> String {
        let tag = hmac::sign(&self.0, &message(user, now));
        format!("{now}.{}", hex(tag.as_ref()))
    }

    /// A token for `user`, issued now.
    pub fn token(&self, user: &str) -> String {
        self.token_at(user, unix_now())
    }

    /// Whether `token` is a valid token of `user` at `now`.
    pub fn check_at(&self, user: &str, token: Option<&str>, now: u64) -> Result<(), BadToken> {
        let token = token.map(str::trim).unwrap_or_default();
        if token.is_empty() {
            return Err(BadToken::Missing);
        }
        let (issued, tag) = token.split_once('.').ok_or(BadToken::Invalid)?;
        if issued.is_empty() || issued.len() > 20 || !issued.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadToken::Invalid);
        }
        let issued: u64 = issued.parse().map_err(|_| BadToken::Invalid)?;
        let tag = unhex(tag).ok_or(BadToken::Invalid)?;
        // The MAC first, in constant time: only a token of this user can expire.
        hmac::verify(&self.0, &message(user, issued), &tag).map_err(|_| BadToken::Invalid)?;
        if issued > now.saturating_add(SKEW) || now.saturating_sub(issued) > MAX_AGE {
            return Err(BadToken::Expired);
        }
        Ok(())
    }

    /// Whether `token` is a valid token of `user` now.
    pub fn check(&self, user: &str, token: Option<&str>) -> Result<(), BadToken> {
        self.check_at(user, token, unix_now())
    }
}

/// What a token's MAC covers; the user last, so the parts cannot shift.
fn message(user: &str, issued: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(PURPOSE.len() + 24 + user.len());
    m.extend_from_slice(PURPOSE);
    m.push(0);
    m.extend_from_slice(issued.to_string().as_bytes());
    m.push(0);
    m.extend_from_slice(user.as_bytes());
    m
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// The bytes of lower-case hexadecimal `text` of a SHA-256 MAC's length.
fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_750_000_000;

    fn key() -> Key {
        Key::random().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_token_is_valid_for_its_user_for_a_working_day() {
        let k = key();
        let t = k.token_at("agent@ans.be", NOW);
        assert!(t.starts_with("1750000000."), "{t}");
        assert_eq!(t.len(), 11 + 64, "{t}");
        assert_eq!(k.check_at("agent@ans.be", Some(&t), NOW), Ok(()));
        assert_eq!(k.check_at("agent@ans.be", Some(&t), NOW + MAX_AGE), Ok(()));
        assert_eq!(
            k.check_at("agent@ans.be", Some(&k.token("agent@ans.be")), unix_now()),
            Ok(())
        );
        assert_eq!(
            k.check("agent@ans.be", Some(&k.token("agent@ans.be"))),
            Ok(())
        );
    }

    #[test]
    fn no_token_is_missing() {
        let k = key();
        assert_eq!(k.check_at("a", None, NOW), Err(BadToken::Missing));
        assert_eq!(k.check_at("a", Some(" "), NOW), Err(BadToken::Missing));
    }

    #[test]
    fn another_users_token_is_invalid() {
        let k = key();
        let t = k.token_at("marie@imio.be", NOW);
        assert_eq!(
            k.check_at("agent@ans.be", Some(&t), NOW),
            Err(BadToken::Invalid)
        );
        // Nor can the boundary between time and user be shifted.
        let t = k.token_at("1agent", 175_000_000);
        assert_eq!(
            k.check_at("agent", Some(&t.replacen('.', "1.", 1)), NOW),
            Err(BadToken::Invalid)
        );
    }

    #[test]
    fn an_old_token_is_expired_and_one_from_the_future_too() {
        let k = key();
        let t = k.token_at("agent@ans.be", NOW);
        assert_eq!(
            k.check_at("agent@ans.be", Some(&t), NOW + MAX_AGE + 1),
            Err(BadToken::Expired)
        );
        assert_eq!(
            k.check_at("agent@ans.be", Some(&t), NOW - SKEW - 1),
            Err(BadToken::Expired)
        );
    }

    #[test]
    fn forged_tokens_are_invalid() {
        let k = key();
        let good = k.token_at("agent@ans.be", NOW);
        let (issued, tag) = good.split_once('.').unwrap_or_default();
        let flipped = format!(
            "{issued}.{}{}",
            &tag[..63],
            if tag.ends_with('0') { '1' } else { '0' }
        );
        let later = format!("{}.{tag}", NOW + 3600);
        let other_key = key().token_at("agent@ans.be", NOW);
        for forged in [
            flipped.as_str(),
            later.as_str(),
            other_key.as_str(),
            "1750000000",
            "1750000000.",
            ".abc",
            "x.0000000000000000000000000000000000000000000000000000000000000000",
            "1750000000.0000000000000000000000000000000000000000000000000000000000000000",
            "+1750000000.0000000000000000000000000000000000000000000000000000000000000000",
            "99999999999999999999999.00",
        ] {
            assert_eq!(
                k.check_at("agent@ans.be", Some(forged), NOW),
                Err(BadToken::Invalid),
                "{forged}"
            );
        }
        // Upper-case hexadecimal of the right MAC is not the token either.
        let upper = format!("{issued}.{}", tag.to_uppercase());
        assert_eq!(
            k.check_at("agent@ans.be", Some(&upper), NOW),
            Err(BadToken::Invalid)
        );
    }

    #[test]
    fn hexadecimal_round_trips() {
        let bytes: Vec<u8> = (0..32).map(|i| i * 8 + 1).collect();
        assert_eq!(unhex(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex("zz"), None);
    }
}
