//! The node's data directory: generated secrets (JWT signing key, embedded database password)
//! and the embedded PostgreSQL cluster live here, so they survive restarts.

use std::{
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use base64::Engine;

/// Returns the secret stored in `dir/name`, generating 48 random bytes (base64) the first time.
pub fn load_or_create_secret(dir: &Path, name: &str) -> Result<String, std::io::Error> {
    std::fs::create_dir_all(dir)?;
    let path: PathBuf = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(secret) if !secret.trim().is_empty() => return Ok(secret.trim().to_owned()),
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let mut bytes = [0u8; 48];
    rand::fill(&mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    write_private(&path, &secret)?;
    Ok(secret)
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> Result<(), std::io::Error> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_secret_is_generated_once_private_and_then_reused() {
        let dir = std::env::temp_dir().join(format!("botwave-secret-{}", uuid::Uuid::new_v4()));
        let first = load_or_create_secret(&dir, "jwt_secret").unwrap();
        let second = load_or_create_secret(&dir, "jwt_secret").unwrap();
        assert_eq!(first, second);
        assert!(first.len() >= 60);
        let mode = std::fs::metadata(dir.join("jwt_secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
