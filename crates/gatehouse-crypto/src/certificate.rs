//! Certificate credentials for identity providers (`private_key_jwt`), as Microsoft's certificate-credentials
//! documentation prescribes: a short-lived client assertion signed with the certificate's key, naming the
//! certificate by its SHA-256 thumbprint.

use aws_lc_rs::digest::{SHA256, digest};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
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
    #[error("could not make the certificate: {0}")]
    Generate(String),
    #[error("could not sign the client assertion: {0}")]
    Sign(String),
}

/// The DER bytes of the first `CERTIFICATE` block of a PEM text.
fn certificate_der(pem: &str) -> Result<Vec<u8>, CertificateError> {
    let body = pem
        .split("-----BEGIN CERTIFICATE-----")
        .nth(1)
        .and_then(|rest| rest.split("-----END CERTIFICATE-----").next())
        .ok_or(CertificateError::CertificatePem)?;
    let base64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(base64).map_err(|_| CertificateError::CertificatePem)
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
    /// `algorithm` is `PS256` (Microsoft's recommendation) or `RS256`.
    pub fn from_pem(private_key_pem: &str, certificate_pem: &str, algorithm: &str) -> Result<Self, CertificateError> {
        let algorithm = match algorithm {
            "PS256" => Algorithm::PS256,
            "RS256" => Algorithm::RS256,
            _ => return Err(CertificateError::Algorithm),
        };
        let key = EncodingKey::from_rsa_pem(private_key_pem.as_bytes()).map_err(|_| CertificateError::PrivateKey)?;
        Ok(Self { key, thumbprint: thumbprint_sha256(certificate_pem)?, algorithm })
    }

    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// A client assertion for `audience` (the token endpoint URL), issued at `now` (unix seconds).
    pub fn assertion(&self, client_id: &str, audience: &str, now: i64) -> Result<String, CertificateError> {
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
        let token = key.assertion("client", "https://login.example/t/oauth2/v2.0/token", now.unix_timestamp()).unwrap();
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
