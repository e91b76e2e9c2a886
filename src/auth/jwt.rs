//! Login tokens: HS256 JWTs carrying the user id, role and the account's token version, with an
//! expiry. Bumping the version (password change, disable) voids every token issued before.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::Role;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub role: Role,
    /// The account's `token_version` when the token was issued.
    pub ver: i32,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token has expired")]
    Expired,
    #[error("token is invalid")]
    Invalid,
}

/// Signs and checks tokens with one shared secret (the same on every node of a cluster).
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

/// A freshly issued token and when it stops working.
#[derive(Debug, Serialize)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

impl TokenKeys {
    pub fn new(secret: &str, ttl: Duration) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            ttl,
        }
    }

    pub fn issue(&self, user: Uuid, role: Role, version: i32) -> Result<IssuedToken, TokenError> {
        let now = chrono::Utc::now();
        let expires_at =
            now + chrono::Duration::from_std(self.ttl).map_err(|_| TokenError::Invalid)?;
        let claims = Claims {
            sub: user,
            role,
            ver: version,
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| TokenError::Invalid)?;
        Ok(IssuedToken { token, expires_at })
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trips_claims() {
        let keys = TokenKeys::new(SECRET, Duration::from_secs(60));
        let user = Uuid::new_v4();
        let issued = keys.issue(user, Role::Admin, 3).unwrap();
        let claims = keys.verify(&issued.token).unwrap();
        assert_eq!(
            (claims.sub, claims.role, claims.ver),
            (user, Role::Admin, 3)
        );
    }

    #[test]
    fn rejects_tokens_signed_with_another_secret() {
        let ours = TokenKeys::new(SECRET, Duration::from_secs(60));
        let theirs = TokenKeys::new("another-secret-another-secret-xx", Duration::from_secs(60));
        let token = theirs.issue(Uuid::new_v4(), Role::Admin, 0).unwrap().token;
        assert_eq!(ours.verify(&token).unwrap_err(), TokenError::Invalid);
    }
}
