//! Gatehouse's cryptography: secrets sealed at rest, signing keys, session JWTs. Pure computation, no I/O.

pub mod certificate;
pub mod digest;
pub mod random;
pub mod sealing;
pub mod signing;
