//! Password hashing with argon2id. Hashing is deliberately slow, so it runs on the blocking pool
//! instead of stalling the async workers.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// argon2id with the crate's defaults (19 MiB, 2 passes), the OWASP-recommended floor.
fn hasher() -> Argon2<'static> {
    Argon2::default()
}

/// Returns the PHC string (`$argon2id$v=19$…`) to store.
pub async fn hash(password: &str) -> Result<String, PasswordError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut salt_bytes = [0u8; 16];
        rand::fill(&mut salt_bytes);
        let salt = SaltString::encode_b64(&salt_bytes)
            .map_err(|error| PasswordError::Hash(error.to_string()))?;
        hasher()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|error| PasswordError::Hash(error.to_string()))
    })
    .await?
}

/// True when `password` matches the stored PHC string.
pub async fn verify(password: &str, stored: &str) -> Result<bool, PasswordError> {
    let password = password.to_owned();
    let stored = stored.to_owned();
    tokio::task::spawn_blocking(move || {
        let parsed =
            PasswordHash::new(&stored).map_err(|error| PasswordError::Hash(error.to_string()))?;
        Ok(hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await?
}

/// A hash of a random password, compared against when the account does not exist, so that
/// "no such user" and "wrong password" take the same time.
pub async fn dummy_hash() -> &'static str {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_init(|| async {
            hash(&uuid::Uuid::new_v4().to_string())
                .await
                .unwrap_or_default()
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_with_argon2id_and_verifies() {
        let stored = hash("correct horse battery").await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &stored).await.unwrap());
        assert!(!verify("correct horse batterY", &stored).await.unwrap());
    }
}
