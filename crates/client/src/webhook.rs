//! Webhook signatures: how liftguard signs the alerts it POSTs to a gym's webhook, and how
//! the gym verifies them.
//!
//! Every delivery carries three headers:
//! - `X-Liftguard-Timestamp`: unix seconds when this attempt was signed (each retry is
//!   signed anew);
//! - `X-Liftguard-Signature`: `v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`, where
//!   `secret` is the whole `whsec_...` string returned by `RegisterWebhook` (as UTF-8
//!   bytes) and `body` the raw request body bytes. Several comma-separated `v1=` entries
//!   may appear; one matching is enough;
//! - `X-Liftguard-Delivery`: a stable id of the (webhook, alert) pair, the same on every
//!   retry: dedupe on it, deliveries are at-least-once.
//!
//! A receiver calls [`verify_signature`] with the raw body (before any JSON parsing) and
//! rejects the request when it fails. The timestamp check bounds replays of a captured
//! request to the tolerance (5 minutes is a good default, [`DEFAULT_TOLERANCE`]).
//!
//! Invariant: comparison is constant time (`hmac`'s `verify_slice`); errors never contain
//! the secret or the expected signature.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header with the unix seconds of signing.
pub const TIMESTAMP_HEADER: &str = "X-Liftguard-Timestamp";
/// Header with `v1=<hex>` signature(s).
pub const SIGNATURE_HEADER: &str = "X-Liftguard-Signature";
/// Header with the stable delivery id (dedupe key).
pub const DELIVERY_HEADER: &str = "X-Liftguard-Delivery";
/// A sensible timestamp tolerance for receivers.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the timestamp header {0:?} is not unix seconds")]
    BadTimestamp(String),
    #[error("the timestamp is {age_s} s away from now, more than the {tolerance_s} s tolerated")]
    Stale { age_s: i64, tolerance_s: u64 },
    #[error("the signature header has no well-formed v1= entry")]
    NoSignature,
    #[error("no v1 signature matches the body and timestamp")]
    Mismatch,
}

fn mac(secret: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length.
    let mut m = <HmacSha256 as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    m.update(timestamp.as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `X-Liftguard-Signature` value of `body` signed at `timestamp` (unix seconds):
/// `v1=` + 64 lowercase hex digits.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, &timestamp.to_string(), body)
        .finalize()
        .into_bytes();
    format!("v1={}", hex::encode(tag))
}

/// Verifies a delivery: `timestamp` and `header` are the values of
/// `X-Liftguard-Timestamp` and `X-Liftguard-Signature`, `body` the raw body, `now` the
/// receiver's unix seconds. `Ok` when the timestamp is within `tolerance` of `now` (either
/// direction) and one `v1=` entry is the HMAC of `"{timestamp}.{body}"` under `secret`.
pub fn verify_signature(
    secret: &str,
    timestamp: &str,
    body: &[u8],
    header: &str,
    now: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let ts = timestamp.trim();
    let t: i64 = ts
        .parse()
        .map_err(|_| SignatureError::BadTimestamp(ts.chars().take(32).collect()))?;
    let age = now.saturating_sub(t).saturating_abs();
    if u64::try_from(age).map_or(true, |a| a > tolerance.as_secs()) {
        return Err(SignatureError::Stale {
            age_s: age,
            tolerance_s: tolerance.as_secs(),
        });
    }
    let mut any = false;
    for entry in header.split(',') {
        let Some(hex_sig) = entry.trim().strip_prefix("v1=") else {
            continue;
        };
        let Ok(sig) = hex::decode(hex_sig) else {
            continue;
        };
        if sig.len() != 32 {
            continue;
        }
        any = true;
        if mac(secret, ts, body).verify_slice(&sig).is_ok() {
            return Ok(());
        }
    }
    if any {
        Err(SignatureError::Mismatch)
    } else {
        Err(SignatureError::NoSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const BODY: &[u8] = br#"{"delivery_id":"wh_1/a-1-2-3","alert":{"title":"Deload"}}"#;
    const TOL: Duration = DEFAULT_TOLERANCE;

    #[test]
    fn known_answer() {
        // The primitive: RFC 4231 test case 2 (key "Jefe").
        let mut m = <HmacSha256 as Mac>::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(m.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // And the framing: HMAC over "12.body".
        let mut m = <HmacSha256 as Mac>::new_from_slice(b"k").unwrap();
        m.update(b"12.body");
        assert_eq!(
            sign("k", 12, b"body"),
            format!("v1={}", hex::encode(m.finalize().into_bytes()))
        );
    }

    #[test]
    fn a_signed_body_verifies() {
        let sig = sign(SECRET, 1_700_000_000, BODY);
        assert!(sig.starts_with("v1=") && sig.len() == 67);
        assert_eq!(
            verify_signature(SECRET, "1700000000", BODY, &sig, 1_700_000_010, TOL),
            Ok(())
        );
        // Rotation: any matching entry is enough.
        let two = format!("v1={}, {sig}", "ab".repeat(32));
        assert_eq!(
            verify_signature(SECRET, "1700000000", BODY, &two, 1_700_000_000, TOL),
            Ok(())
        );
    }

    #[test]
    fn tampering_is_detected() {
        let sig = sign(SECRET, 1_700_000_000, BODY);
        let mut tampered = BODY.to_vec();
        tampered[20] ^= 1;
        assert_eq!(
            verify_signature(SECRET, "1700000000", &tampered, &sig, 1_700_000_000, TOL),
            Err(SignatureError::Mismatch)
        );
        let wrong = SECRET.replace("00112233", "00112234");
        assert_eq!(
            verify_signature(&wrong, "1700000000", BODY, &sig, 1_700_000_000, TOL),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is signed too: moving it breaks the signature.
        assert_eq!(
            verify_signature(SECRET, "1700000001", BODY, &sig, 1_700_000_000, TOL),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn stale_and_malformed_inputs_are_refused() {
        let sig = sign(SECRET, 1_700_000_000, BODY);
        assert_eq!(
            verify_signature(SECRET, "1700000000", BODY, &sig, 1_700_000_301, TOL),
            Err(SignatureError::Stale {
                age_s: 301,
                tolerance_s: 300
            })
        );
        assert!(matches!(
            verify_signature(SECRET, "1700000000", BODY, &sig, 1_699_999_000, TOL),
            Err(SignatureError::Stale { age_s: 1000, .. })
        ));
        assert_eq!(
            verify_signature(SECRET, "1700000000", BODY, &sig, 1_700_000_300, TOL),
            Ok(()),
            "the bound is inclusive"
        );
        assert!(matches!(
            verify_signature(SECRET, "soon", BODY, &sig, 0, TOL),
            Err(SignatureError::BadTimestamp(_))
        ));
        for bad in ["", "v0=abc", "v1=zz", "v1=abcd"] {
            assert_eq!(
                verify_signature(SECRET, "1700000000", BODY, bad, 1_700_000_000, TOL),
                Err(SignatureError::NoSignature),
                "{bad}"
            );
        }
        let e = verify_signature(SECRET, "1700000000", BODY, "v1=00", 1_700_000_000, TOL)
            .unwrap_err()
            .to_string();
        assert!(!e.contains(SECRET));
    }
}
