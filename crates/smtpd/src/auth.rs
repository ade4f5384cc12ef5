//! SMTP AUTH users: argon2 password hashes from the configuration or a users file.

use std::collections::HashMap;
use std::io;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use relais_config::Config;

use crate::users_file;

/// The user database.
#[derive(Debug, Default, Clone)]
pub struct Users {
    /// Name (lower case) to PHC hash.
    hashes: HashMap<String, String>,
    /// Name (lower case) to the sender addresses it may use besides `name@local-domain`.
    addresses: HashMap<String, Vec<String>>,
}

impl Users {
    /// Loads `auth.users` and `auth.users_file`.
    pub fn load(config: &Config) -> io::Result<Users> {
        let mut u = Users::default();
        for user in &config.auth.users {
            u.hashes
                .insert(user.name.to_ascii_lowercase(), user.hash.clone());
            u.addresses.insert(
                user.name.to_ascii_lowercase(),
                user.addresses
                    .iter()
                    .map(|a| a.to_ascii_lowercase())
                    .collect(),
            );
        }
        if let Some(path) = &config.auth.users_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            for entry in users_file::parse(&text, path)? {
                u.hashes.insert(entry.name.to_ascii_lowercase(), entry.hash);
            }
        }
        Ok(u)
    }

    /// True if there is anybody to authenticate.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Checks a password. Slow on purpose (argon2): call from a blocking thread.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        let Some(hash) = self.hashes.get(&name.to_ascii_lowercase()) else {
            // Spend the same time on unknown users, so timing tells nothing.
            let _ = hash_password("not a password");
            return false;
        };
        match PasswordHash::new(hash) {
            Ok(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }

    /// Extra sender addresses of a user.
    pub fn addresses(&self, name: &str) -> &[String] {
        self.addresses
            .get(&name.to_ascii_lowercase())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// An argon2id hash of a password, in PHC format, with a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let hash = hash_password("s3cret").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        let mut c = Config::parse("").unwrap();
        c.auth.users.push(relais_config::AuthUser {
            name: "Alice".into(),
            hash,
            addresses: vec![],
        });
        let u = Users::load(&c).unwrap();
        assert!(u.verify("alice", "s3cret"));
        assert!(!u.verify("alice", "wrong"));
        assert!(!u.verify("bob", "s3cret"));
    }
}
