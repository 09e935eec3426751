//! JSON Web Signatures in compact form: parsing, verifying and signing the tokens Backstage
//! exchanges.
//!
//! Written on top of `ring` (already in the build for TLS) rather than a JWT crate: `ring`'s
//! P-256 verification is about six times faster than the pure-Rust one the JWT crates offer here
//! (about 60 µs against 380 µs per ES256 token in a release build), and Backstage's rules
//! (token types in the `typ` header, which claims each type requires, limited tokens whose
//! signature is another token's `uip` claim) need the header and claims read by hand anyway.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, EcdsaKeyPair, UnparsedPublicKey};
use serde::Deserialize;

/// Tokens longer than this are refused before any parsing.
pub(crate) const MAX_TOKEN_BYTES: usize = 32 * 1024;

/// `typ` of a user token issued by the auth backend.
pub(crate) const USER_TYP: &str = "vnd.backstage.user";
/// `typ` of a limited user token (the cookie token).
pub(crate) const LIMITED_USER_TYP: &str = "vnd.backstage.limited-user";
/// `typ` of a plugin-to-plugin token.
pub(crate) const PLUGIN_TYP: &str = "vnd.backstage.plugin";
/// `aud` of user tokens.
pub(crate) const USER_AUD: &str = "backstage";

/// The protected header of a token.
#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    pub(crate) alg: String,
    #[serde(default)]
    pub(crate) typ: Option<String>,
    #[serde(default)]
    pub(crate) kid: Option<String>,
}

/// A claim that is a string or a list of strings (`aud`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn contains(&self, value: &str) -> bool {
        match self {
            OneOrMany::One(one) => one == value,
            OneOrMany::Many(many) => many.iter().any(|v| v == value),
        }
    }
}

/// The claims Backstage's tokens use; others are ignored.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Claims {
    #[serde(default)]
    pub(crate) iss: Option<String>,
    #[serde(default)]
    pub(crate) sub: Option<String>,
    #[serde(default)]
    pub(crate) aud: Option<OneOrMany>,
    #[serde(default)]
    pub(crate) iat: Option<f64>,
    #[serde(default)]
    pub(crate) exp: Option<f64>,
    #[serde(default)]
    pub(crate) nbf: Option<f64>,
    #[serde(default)]
    pub(crate) ent: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) obo: Option<String>,
}

/// A token split into its parts; nothing is verified yet.
#[derive(Debug)]
pub(crate) struct Jws<'a> {
    pub(crate) header: Header,
    pub(crate) claims: Claims,
    /// `base64(header).base64(claims)`: what the signature covers.
    pub(crate) signing_input: &'a str,
    pub(crate) signature: Vec<u8>,
}

/// Decodes base64url without padding, as JWS uses it.
pub(crate) fn b64_decode(input: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(input).ok()
}

/// Encodes base64url without padding.
pub(crate) fn b64_encode(input: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(input)
}

/// Decodes a secret written in base64 or base64url, with or without padding.
/// Lenient about unused trailing bits, as Node's decoder is.
pub(crate) fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    use base64::alphabet::{STANDARD, URL_SAFE};
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let config = GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let trimmed = secret.trim_end_matches('=');
    GeneralPurpose::new(&URL_SAFE, config)
        .decode(trimmed)
        .or_else(|_| GeneralPurpose::new(&STANDARD, config).decode(trimmed))
        .ok()
}

/// Splits and decodes a compact JWS; `None` when it is not one (or is too large).
pub(crate) fn decode(token: &str) -> Option<Jws<'_>> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let (signing_input, signature) = token.rsplit_once('.')?;
    let (header, claims) = signing_input.split_once('.')?;
    if claims.contains('.') {
        return None;
    }
    let header: Header = serde_json::from_slice(&b64_decode(header)?).ok()?;
    let claims: Claims = serde_json::from_slice(&b64_decode(claims)?).ok()?;
    Some(Jws {
        header,
        claims,
        signing_input,
        signature: b64_decode(signature)?,
    })
}

/// Seconds since the epoch, now.
pub(crate) fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Why a token's claims were refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ClaimError {
    Missing(&'static str),
    Expired,
    NotYetValid,
    Audience,
}

impl std::fmt::Display for ClaimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClaimError::Missing(claim) => write!(f, "missing required \"{claim}\" claim"),
            ClaimError::Expired => f.write_str("\"exp\" claim timestamp check failed"),
            ClaimError::NotYetValid => f.write_str("\"nbf\" claim timestamp check failed"),
            ClaimError::Audience => f.write_str("unexpected \"aud\" claim value"),
        }
    }
}

impl Claims {
    /// Checks the time claims the way `jose` does (no clock tolerance): `exp` must be in the
    /// future, `nbf` (when present) in the past; `required` lists claims that must be present.
    pub(crate) fn check(&self, required: &[&'static str]) -> Result<(), ClaimError> {
        for claim in required {
            let present = match *claim {
                "iat" => self.iat.is_some(),
                "exp" => self.exp.is_some(),
                "sub" => self.sub.is_some(),
                "aud" => self.aud.is_some(),
                _ => true,
            };
            if !present {
                return Err(ClaimError::Missing(claim));
            }
        }
        let now = now_secs();
        if let Some(exp) = self.exp
            && exp <= now
        {
            return Err(ClaimError::Expired);
        }
        if let Some(nbf) = self.nbf
            && nbf > now
        {
            return Err(ClaimError::NotYetValid);
        }
        Ok(())
    }
}

/// A key that verifies signatures of one algorithm.
#[derive(Debug)]
pub(crate) enum VerifyKey {
    /// ES256, ES384: an uncompressed curve point.
    Ecdsa { alg: &'static str, point: Vec<u8> },
    /// RS256/384/512, PS256/384/512: modulus and exponent; any of these algorithms.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// EdDSA over Ed25519.
    Ed25519(Vec<u8>),
    /// HS256 (legacy shared secrets).
    Hmac(ring::hmac::Key),
}

impl VerifyKey {
    /// Whether `signature` is `alg`'s signature of `input` by this key. An algorithm the key
    /// is not for is refused.
    pub(crate) fn verify(&self, alg: &str, input: &[u8], signature: &[u8]) -> bool {
        match self {
            VerifyKey::Ecdsa { alg: own, point } => {
                let algorithm: &dyn signature::VerificationAlgorithm = match (alg, *own) {
                    ("ES256", "ES256") => &signature::ECDSA_P256_SHA256_FIXED,
                    ("ES384", "ES384") => &signature::ECDSA_P384_SHA384_FIXED,
                    _ => return false,
                };
                UnparsedPublicKey::new(algorithm, point)
                    .verify(input, signature)
                    .is_ok()
            }
            VerifyKey::Rsa { n, e } => {
                let params: &signature::RsaParameters = match alg {
                    "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                    "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                    "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                    "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                    "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, input, signature)
                    .is_ok()
            }
            VerifyKey::Ed25519(key) => {
                alg == "EdDSA"
                    && UnparsedPublicKey::new(&signature::ED25519, key)
                        .verify(input, signature)
                        .is_ok()
            }
            VerifyKey::Hmac(key) => {
                alg == "HS256" && ring::hmac::verify(key, input, signature).is_ok()
            }
        }
    }
}

/// A public key in JWK form, as a JWKS lists it.
#[derive(Debug, Deserialize)]
pub(crate) struct Jwk {
    pub(crate) kty: String,
    #[serde(default)]
    pub(crate) kid: Option<String>,
    #[serde(default)]
    pub(crate) alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<String>,
}

impl Jwk {
    /// The verification key this JWK describes; `None` for keys we cannot use (private,
    /// encryption-only, unknown curve).
    pub(crate) fn to_key(&self) -> Option<VerifyKey> {
        if self.usage.as_deref().is_some_and(|u| u != "sig") {
            return None;
        }
        let field = |v: &Option<String>| v.as_deref().and_then(b64_decode);
        match (self.kty.as_str(), self.crv.as_deref()) {
            ("EC", Some(crv)) => {
                let (alg, len) = match crv {
                    "P-256" => ("ES256", 32),
                    "P-384" => ("ES384", 48),
                    _ => return None,
                };
                let (x, y) = (field(&self.x)?, field(&self.y)?);
                if x.len() != len || y.len() != len {
                    return None;
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Some(VerifyKey::Ecdsa { alg, point })
            }
            ("RSA", _) => Some(VerifyKey::Rsa {
                n: field(&self.n)?,
                e: field(&self.e)?,
            }),
            ("OKP", Some("Ed25519")) => Some(VerifyKey::Ed25519(field(&self.x)?)),
            _ => None,
        }
    }
}

/// The public JWK of a P-256 key pair.
pub(crate) fn es256_public_jwk(pair: &EcdsaKeyPair, kid: &str) -> serde_json::Value {
    use ring::signature::KeyPair;
    let point = pair.public_key().as_ref();
    // An uncompressed P-256 point: 0x04, then 32 bytes of x and 32 of y.
    let (x, y) = point[1..].split_at(32);
    serde_json::json!({
        "kty": "EC",
        "x": b64_encode(x),
        "y": b64_encode(y),
        "crv": "P-256",
        "kid": kid,
        "alg": "ES256",
    })
}

/// Signs `header` and `claims` (already serialized JSON) with an ES256 key.
pub(crate) fn sign_es256(
    pair: &EcdsaKeyPair,
    header: &str,
    claims: &str,
) -> Result<String, ring::error::Unspecified> {
    let mut token = b64_encode(header.as_bytes());
    token.push('.');
    token.push_str(&b64_encode(claims.as_bytes()));
    let signature = pair.sign(&ring::rand::SystemRandom::new(), token.as_bytes())?;
    token.push('.');
    token.push_str(&b64_encode(signature.as_ref()));
    Ok(token)
}

/// A fresh P-256 key pair, as PKCS#8.
pub(crate) fn generate_es256() -> Result<EcdsaKeyPair, ring::error::Unspecified> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)?;
    EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .map_err(|_| ring::error::Unspecified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_es256_through_a_jwk() {
        let pair = generate_es256().unwrap();
        let jwk: Jwk = serde_json::from_value(es256_public_jwk(&pair, "k1")).unwrap();
        let key = jwk.to_key().unwrap();
        let token = sign_es256(
            &pair,
            r#"{"typ":"vnd.backstage.plugin","alg":"ES256","kid":"k1"}"#,
            r#"{"sub":"a","aud":"b","iat":1,"exp":4000000000}"#,
        )
        .unwrap();
        let jws = decode(&token).unwrap();
        assert_eq!(jws.header.typ.as_deref(), Some(PLUGIN_TYP));
        assert!(key.verify("ES256", jws.signing_input.as_bytes(), &jws.signature));
        assert!(!key.verify("ES384", jws.signing_input.as_bytes(), &jws.signature));
        let mut tampered = jws.signing_input.to_owned();
        tampered.push('x');
        assert!(!key.verify("ES256", tampered.as_bytes(), &jws.signature));
        assert!(jws.claims.check(&["iat", "exp", "sub", "aud"]).is_ok());
    }

    #[test]
    fn refuses_what_is_not_a_compact_jws() {
        assert!(decode("not-a-token").is_none());
        assert!(decode("a.b.c.d").is_none());
        assert!(decode("!!!.e30.").is_none());
        let huge = format!("{}.e30.", "e".repeat(MAX_TOKEN_BYTES));
        assert!(decode(&huge).is_none());
    }

    #[test]
    fn time_claims_are_checked() {
        let now = now_secs();
        let claims = |exp: Option<f64>, nbf: Option<f64>| Claims {
            exp,
            nbf,
            ..Claims::default()
        };
        assert_eq!(
            claims(None, None).check(&["exp"]),
            Err(ClaimError::Missing("exp"))
        );
        assert_eq!(
            claims(Some(now - 1.0), None).check(&[]),
            Err(ClaimError::Expired)
        );
        assert_eq!(
            claims(Some(now + 60.0), Some(now + 30.0)).check(&[]),
            Err(ClaimError::NotYetValid)
        );
        assert!(claims(Some(now + 60.0), Some(now - 1.0)).check(&[]).is_ok());
    }
}
