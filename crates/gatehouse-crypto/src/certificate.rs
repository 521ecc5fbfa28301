//! Certificate credentials for identity providers (`private_key_jwt`), as Microsoft's certificate-credentials
//! documentation prescribes: a short-lived client assertion signed with the certificate's key, naming the
//! certificate by its SHA-256 thumbprint.

use aws_lc_rs::digest::{SHA256, digest};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use gatehouse_core::clock::Timestamp;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::signing::{generate_private_key, private_key_pem};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertificateError {
    #[error("the certificate is not a PEM \"CERTIFICATE\" block")]
    CertificatePem,
    #[error("the private key is not an RSA key in PEM (PKCS#8 \"PRIVATE KEY\" or PKCS#1)")]
    PrivateKey,
    #[error("the assertion algorithm must be PS256 or RS256")]
    Algorithm,
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
    #[error("the certificate's validity could not be read")]
    Validity,
    #[error("could not make the certificate: {0}")]
    Generate(String),
    #[error("could not sign the client assertion: {0}")]
    Sign(String),
}

/// The DER bytes of the first `CERTIFICATE` block of a PEM text.
fn certificate_der(pem: &str) -> Result<Vec<u8>, CertificateError> {
    pem_block(pem, "CERTIFICATE").ok_or(CertificateError::CertificatePem)
}

/// The DER of the first PEM block labelled `label`.
fn pem_block(pem: &str, label: &str) -> Option<Vec<u8>> {
    let body =
        pem.split(&format!("-----BEGIN {label}-----")).nth(1)?.split(&format!("-----END {label}-----")).next()?;
    STANDARD.decode(body.chars().filter(|c| !c.is_whitespace()).collect::<String>()).ok()
}

/// One DER element: its tag, its contents, and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let width = usize::from(first & 0x7f);
        if width == 0 || width > 4 || rest.len() < width {
            return None;
        }
        (rest[..width].iter().fold(0usize, |length, byte| length << 8 | usize::from(*byte)), &rest[width..])
    };
    (rest.len() >= length).then(|| (tag, &rest[..length], &rest[length..]))
}

/// A certificate's validity period and its RSA public key (`RSAPublicKey` DER).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    public_key: Vec<u8>,
}

const SEQUENCE: u8 = 0x30;

/// Reads the fields Gatehouse needs from an X.509 certificate (RFC 5280 §4.1): just enough DER, no more.
pub fn certificate_info(certificate_pem: &str) -> Result<CertificateInfo, CertificateError> {
    let der = certificate_der(certificate_pem)?;
    let read = || -> Option<CertificateInfo> {
        let (SEQUENCE, certificate, _) = der_element(&der)? else { return None };
        let (SEQUENCE, tbs, _) = der_element(certificate)? else { return None };
        let (tag, _, mut rest) = der_element(tbs)?;
        if tag == 0xa0 {
            rest = der_element(rest)?.2; // version was explicit; skip the serial number too
        }
        let (_, _, rest) = der_element(rest)?; // signature algorithm
        let (_, _, rest) = der_element(rest)?; // issuer
        let (SEQUENCE, validity, rest) = der_element(rest)? else { return None };
        let (_, _, rest) = der_element(rest)?; // subject
        let (SEQUENCE, spki, _) = der_element(rest)? else { return None };
        let (not_before_tag, not_before, validity) = der_element(validity)?;
        let (not_after_tag, not_after, _) = der_element(validity)?;
        let (_, _, key) = der_element(spki)?; // algorithm
        let (0x03, bits, _) = der_element(key)? else { return None };
        Some(CertificateInfo {
            not_before: der_time(not_before_tag, not_before)?,
            not_after: der_time(not_after_tag, not_after)?,
            public_key: bits.get(1..)?.to_vec(),
        })
    };
    read().ok_or(CertificateError::Validity)
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as unix seconds.
fn der_time(tag: u8, text: &[u8]) -> Option<Timestamp> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let full = match (tag, text.len()) {
        (0x17, 12) => format!("{}{text}", if text[..2].parse::<u8>().ok()? < 50 { "20" } else { "19" }),
        (0x18, 14) => text.to_owned(),
        _ => return None,
    };
    let format = time::macros::format_description!("[year][month][day][hour][minute][second]");
    Some(Timestamp::from_secs(time::PrimitiveDateTime::parse(&full, format).ok()?.assume_utc().unix_timestamp()))
}

/// The RSA public key (`RSAPublicKey` DER) of a PEM private key, PKCS#8 or PKCS#1.
fn rsa_public_key(private_key_pem: &str) -> Option<Vec<u8>> {
    use aws_lc_rs::{rsa::KeyPair, signature::KeyPair as _};
    let pair = match pem_block(private_key_pem, "PRIVATE KEY") {
        Some(pkcs8) => KeyPair::from_pkcs8(&pkcs8).ok()?,
        None => KeyPair::from_der(&pem_block(private_key_pem, "RSA PRIVATE KEY")?).ok()?,
    };
    Some(pair.public_key().as_ref().to_vec())
}

/// `x5t#S256`: base64url of the SHA-256 of the certificate's DER.
pub fn thumbprint_sha256(certificate_pem: &str) -> Result<String, CertificateError> {
    Ok(URL_SAFE_NO_PAD.encode(digest(&SHA256, &certificate_der(certificate_pem)?)))
}

/// A key and certificate that authenticate a client to a token endpoint.
pub struct ClientAssertionKey {
    key: EncodingKey,
    thumbprint: String,
    algorithm: Algorithm,
    not_after: Timestamp,
}

impl std::fmt::Debug for ClientAssertionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAssertionKey").field("thumbprint", &self.thumbprint).finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

/// How long an assertion is valid: Microsoft accepts at most ten minutes.
pub const ASSERTION_LIFETIME_SECS: i64 = 5 * 60;

impl ClientAssertionKey {
    /// `algorithm` is `PS256` (Microsoft's recommendation) or `RS256`. The key must belong to the certificate:
    /// a mismatch would only show up as Microsoft refusing every sign-in.
    pub fn from_pem(private_key_pem: &str, certificate_pem: &str, algorithm: &str) -> Result<Self, CertificateError> {
        let algorithm = match algorithm {
            "PS256" => Algorithm::PS256,
            "RS256" => Algorithm::RS256,
            _ => return Err(CertificateError::Algorithm),
        };
        let key = EncodingKey::from_rsa_pem(private_key_pem.as_bytes()).map_err(|_| CertificateError::PrivateKey)?;
        let info = certificate_info(certificate_pem)?;
        if rsa_public_key(private_key_pem).ok_or(CertificateError::PrivateKey)? != info.public_key {
            return Err(CertificateError::KeyMismatch);
        }
        Ok(Self { key, thumbprint: thumbprint_sha256(certificate_pem)?, algorithm, not_after: info.not_after })
    }

    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// When the certificate expires (unix seconds).
    pub fn not_after(&self) -> Timestamp {
        self.not_after
    }

    /// A client assertion for `audience` (the token endpoint URL), issued at `now`.
    pub fn assertion(&self, client_id: &str, audience: &str, now: Timestamp) -> Result<String, CertificateError> {
        let now = now.as_secs();
        let mut header = Header::new(self.algorithm);
        header.typ = Some("JWT".into());
        header.x5t_s256 = Some(self.thumbprint.clone());
        let claims = AssertionClaims {
            aud: audience,
            iss: client_id,
            sub: client_id,
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: now,
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| CertificateError::Sign(e.to_string()))
    }
}

/// A new RSA-2048 key and a self-signed certificate valid for `days` from `now`, to upload to the app
/// registration.
#[derive(Debug)]
pub struct GeneratedCertificate {
    pub private_key_pem: String,
    pub certificate_pem: String,
    pub thumbprint_sha256: String,
}

pub fn generate_self_signed(
    common_name: &str,
    days: u32,
    now: time::OffsetDateTime,
) -> Result<GeneratedCertificate, CertificateError> {
    let fail = |e: rcgen::Error| CertificateError::Generate(e.to_string());
    let der = generate_private_key(gatehouse_core::config::SigningAlgorithm::RS256)
        .map_err(|e| CertificateError::Generate(e.to_string()))?;
    let key_pair = rcgen::KeyPair::try_from(der.as_slice()).map_err(fail)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(i64::from(days));
    let certificate = params.self_signed(&key_pair).map_err(fail)?;
    let certificate_pem = certificate.pem();
    Ok(GeneratedCertificate {
        private_key_pem: private_key_pem(&der),
        thumbprint_sha256: thumbprint_sha256(&certificate_pem)?,
        certificate_pem,
    })
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation, jwk::Jwk};

    use super::*;

    #[test]
    fn a_generated_certificate_signs_verifiable_assertions() {
        let now = time::OffsetDateTime::now_utc();
        let generated = generate_self_signed("Gatehouse test", 30, now).unwrap();
        assert!(generated.certificate_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let key =
            ClientAssertionKey::from_pem(&generated.private_key_pem, &generated.certificate_pem, "PS256").unwrap();
        assert_eq!(key.thumbprint(), generated.thumbprint_sha256);
        assert_eq!(key.thumbprint().len(), 43);
        let token = key
            .assertion(
                "client",
                "https://login.example/t/oauth2/v2.0/token",
                Timestamp::from_secs(now.unix_timestamp()),
            )
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!((header.alg, header.x5t_s256.as_deref()), (Algorithm::PS256, Some(key.thumbprint())));
        let encoding = EncodingKey::from_rsa_pem(generated.private_key_pem.as_bytes()).unwrap();
        let public = DecodingKey::from_jwk(&Jwk::from_encoding_key(&encoding, Algorithm::PS256).unwrap()).unwrap();
        let mut validation = Validation::new(Algorithm::PS256);
        validation.set_audience(&["https://login.example/t/oauth2/v2.0/token"]);
        validation.set_issuer(&["client"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(&token, &public, &validation).unwrap().claims;
        assert_eq!(claims["sub"], "client");
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), ASSERTION_LIFETIME_SECS);
    }

    #[test]
    fn validity_is_read_and_a_foreign_key_is_refused() {
        let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let one = generate_self_signed("one", 30, now).unwrap();
        let info = certificate_info(&one.certificate_pem).unwrap();
        assert_eq!(info.not_after, Timestamp::from_secs((now + time::Duration::days(30)).unix_timestamp()));
        assert_eq!(info.not_before, Timestamp::from_secs((now - time::Duration::minutes(5)).unix_timestamp()));
        let key = ClientAssertionKey::from_pem(&one.private_key_pem, &one.certificate_pem, "RS256").unwrap();
        assert_eq!(key.not_after(), info.not_after);
        let two = generate_self_signed("two", 30, now).unwrap();
        assert_eq!(
            ClientAssertionKey::from_pem(&two.private_key_pem, &one.certificate_pem, "PS256").unwrap_err(),
            CertificateError::KeyMismatch
        );
        assert_eq!(der_time(0x17, b"491231235959Z"), Some(Timestamp::from_secs(2524607999)));
        assert_eq!(der_time(0x18, b"20500101000000Z"), Some(Timestamp::from_secs(2524608000)));
        assert_eq!(der_time(0x17, b"4912312359Z"), None);
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert_eq!(thumbprint_sha256("not a certificate"), Err(CertificateError::CertificatePem));
        let generated = generate_self_signed("x", 1, time::OffsetDateTime::now_utc()).unwrap();
        assert!(matches!(
            ClientAssertionKey::from_pem("garbage", &generated.certificate_pem, "PS256"),
            Err(CertificateError::PrivateKey)
        ));
        assert!(matches!(
            ClientAssertionKey::from_pem(&generated.private_key_pem, &generated.certificate_pem, "HS256"),
            Err(CertificateError::Algorithm)
        ));
    }
}
