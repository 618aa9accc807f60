//! Key-pair authentication: an RSA private key in PKCS#8 PEM and the JWT Snowflake accepts
//! for it (`AUTHENTICATOR = SNOWFLAKE_JWT`).
//!
//! The JWT is `base64url(header).base64url(claims).base64url(signature)` without padding,
//! header `{"alg":"RS256","typ":"JWT"}`, claims `iss = "<ACCOUNT>.<USER>.SHA256:<fp>"`,
//! `sub = "<ACCOUNT>.<USER>"`, `iat` and `exp = iat + 3600` (Snowflake's maximum), signed with
//! RSASSA-PKCS1-v1_5 SHA-256. `<fp>` is the base64 SHA-256 of the public key's DER
//! SubjectPublicKeyInfo, the value `DESC USER` shows as `RSA_PUBLIC_KEY_FP`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use pkcs8::der::Encode as _;
use pkcs8::der::asn1::{AnyRef, BitStringRef};
use pkcs8::{AlgorithmIdentifierRef, EncryptedPrivateKeyInfoRef, SecretDocument};
use pkcs8::{ObjectIdentifier, SubjectPublicKeyInfoRef};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use secrecy::{ExposeSecret as _, SecretString};

use crate::error::{Error, Result};

/// How long a JWT is valid: Snowflake refuses tokens valid for more than an hour.
const JWT_LIFETIME: Duration = Duration::from_secs(3600);

/// `rsaEncryption` (RFC 8017), the algorithm of an RSA SubjectPublicKeyInfo.
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// An RSA private key for key-pair authentication. `Debug` shows only the public fingerprint;
/// clones share the key.
#[derive(Clone)]
pub struct PrivateKey {
    pair: Arc<RsaKeyPair>,
    fingerprint: String,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Reads a PKCS#8 PEM key: `BEGIN PRIVATE KEY`, or `BEGIN ENCRYPTED PRIVATE KEY` with its
    /// passphrase.
    pub fn from_pem(pem: &str, passphrase: Option<&SecretString>) -> Result<PrivateKey> {
        let key_err = |reason: String| Error::Key { reason };
        let (label, doc) = SecretDocument::from_pem(pem.trim())
            .map_err(|e| key_err(format!("not a PEM private key: {e}")))?;
        let der = match (label, passphrase) {
            ("PRIVATE KEY", _) => doc,
            ("ENCRYPTED PRIVATE KEY", Some(passphrase)) => {
                EncryptedPrivateKeyInfoRef::try_from(doc.as_bytes())
                    .map_err(|e| key_err(format!("malformed encrypted key: {e}")))?
                    .decrypt(passphrase.expose_secret())
                    .map_err(|_| {
                        key_err("the passphrase does not decrypt the private key".into())
                    })?
            }
            ("ENCRYPTED PRIVATE KEY", None) => {
                return Err(key_err(
                    "the private key is encrypted and no passphrase is configured".into(),
                ));
            }
            ("RSA PRIVATE KEY", _) => {
                return Err(key_err(
                    "the key is in PKCS#1 form (BEGIN RSA PRIVATE KEY); convert it to PKCS#8 \
                     with `openssl pkcs8 -topk8 -inform PEM -in rsa_key.pem -out rsa_key.p8 \
                     -nocrypt` (or without -nocrypt, to encrypt it with a passphrase)"
                        .into(),
                ));
            }
            (other, _) => {
                return Err(key_err(format!(
                    "expected BEGIN PRIVATE KEY or BEGIN ENCRYPTED PRIVATE KEY, found BEGIN {other}"
                )));
            }
        };
        let pair = RsaKeyPair::from_pkcs8(der.as_bytes())
            .map_err(|e| key_err(format!("not a usable RSA key: {e}")))?;
        let fingerprint = fingerprint(pair.public().as_ref())?;
        Ok(PrivateKey {
            pair: Arc::new(pair),
            fingerprint,
        })
    }

    /// `SHA256:` and the base64 SHA-256 of the public key's DER SubjectPublicKeyInfo.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// A JWT for `user` of `account`, issued at `now`, valid for an hour.
    pub fn jwt(&self, account: &str, user: &str, now: SystemTime) -> Result<String> {
        let qualified = format!("{}.{}", account_name(account), user.to_uppercase());
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| Error::Config("the clock is before 1970".into()))?
            .as_secs();
        let claims = serde_json::json!({
            "iss": format!("{qualified}.{}", self.fingerprint),
            "sub": qualified,
            "iat": iat,
            "exp": iat + JWT_LIFETIME.as_secs(),
        });
        let mut message = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        message.push('.');
        message.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message.as_bytes(),
                &mut signature,
            )
            .map_err(|_| Error::Key {
                reason: "signing the JWT failed".into(),
            })?;
        message.push('.');
        message.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(message)
    }

    #[cfg(test)]
    fn public_key(&self) -> &[u8] {
        self.pair.public().as_ref()
    }
}

/// The account as the JWT and the login name it: upper case, without a region or domain
/// (`xy12345.us-east-1` → `XY12345`; `myorg-myaccount` stays whole).
pub(crate) fn account_name(account: &str) -> String {
    account.split('.').next().unwrap_or(account).to_uppercase()
}

fn fingerprint(rsa_public_key: &[u8]) -> Result<String> {
    let key_err = |e: pkcs8::der::Error| Error::Key {
        reason: format!("encoding the public key: {e}"),
    };
    let spki = SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef {
            oid: RSA_ENCRYPTION,
            parameters: Some(AnyRef::NULL),
        },
        subject_public_key: BitStringRef::from_bytes(rsa_public_key).map_err(key_err)?,
    };
    let der = spki.to_der().map_err(key_err)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &der);
    Ok(format!("SHA256:{}", STANDARD.encode(digest.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("../tests/keys/rsa_key.p8");
    const ENCRYPTED: &str = include_str!("../tests/keys/rsa_key_encrypted.p8");
    const PKCS1: &str = include_str!("../tests/keys/rsa_key_pkcs1.pem");
    /// `openssl rsa -in tests/keys/rsa_key.p8 -pubout -outform DER | openssl dgst -sha256 -binary | base64`
    const FINGERPRINT: &str = "SHA256:aKZPi5yFdKTp7wz/LAZfFK4DAtp/7lGWS0dx+Ucr5CA=";

    fn passphrase(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn fingerprint_matches_openssl() {
        let key = PrivateKey::from_pem(KEY, None).expect("key");
        assert_eq!(key.fingerprint(), FINGERPRINT);
        assert_eq!(
            format!("{key:?}"),
            format!("PrivateKey {{ fingerprint: {FINGERPRINT:?}, .. }}")
        );
    }

    #[test]
    fn encrypted_key_decrypts_to_the_same_key() {
        let key = PrivateKey::from_pem(ENCRYPTED, Some(&passphrase("sluice-test"))).expect("key");
        assert_eq!(key.fingerprint(), FINGERPRINT);
    }

    #[test]
    fn wrong_passphrase_is_a_clear_error() {
        let err = PrivateKey::from_pem(ENCRYPTED, Some(&passphrase("nope"))).expect_err("wrong");
        assert_eq!(
            err.to_string(),
            "invalid private key: the passphrase does not decrypt the private key"
        );
        let err = PrivateKey::from_pem(ENCRYPTED, None).expect_err("missing");
        assert!(err.to_string().contains("no passphrase"), "{err}");
    }

    #[test]
    fn pkcs1_key_names_the_conversion_command() {
        let err = PrivateKey::from_pem(PKCS1, None).expect_err("pkcs1");
        assert!(err.to_string().contains("openssl pkcs8 -topk8"), "{err}");
    }

    #[test]
    fn account_loses_region_and_domain() {
        assert_eq!(account_name("xy12345.us-east-1"), "XY12345");
        assert_eq!(account_name("xy12345.snowflakecomputing.com"), "XY12345");
        assert_eq!(account_name("myorg-myaccount"), "MYORG-MYACCOUNT");
    }

    #[test]
    fn jwt_claims_and_signature() {
        let key = PrivateKey::from_pem(KEY, None).expect("key");
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let jwt = key.jwt("xy12345.us-east-1", "loader", now).expect("jwt");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).expect("base64url");
        assert_eq!(decode(parts[0]), br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims: serde_json::Value =
            serde_json::from_slice(&decode(parts[1])).expect("claims json");
        assert_eq!(
            claims,
            serde_json::json!({
                "iss": format!("XY12345.LOADER.{FINGERPRINT}"),
                "sub": "XY12345.LOADER",
                "iat": 1_700_000_000u64,
                "exp": 1_700_003_600u64,
            })
        );
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            key.public_key(),
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        public
            .verify(signed.as_bytes(), &decode(parts[2]))
            .expect("signature verifies");
        assert!(
            public.verify(b"tampered", &decode(parts[2])).is_err(),
            "a tampered message must not verify"
        );
    }
}
