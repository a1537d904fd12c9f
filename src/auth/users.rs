//! Built-in identities: argon2id password hashes only. Unknown users are checked against a
//! dummy hash so they cost the same time as a wrong password.

use crate::config::file::UserConfig;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

/// A hash of a random password, made once, for unknown users.
static DUMMY: LazyLock<Option<String>> = LazyLock::new(|| {
    let random: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    hash_password(&random).ok()
});

#[derive(Debug, Clone)]
pub struct User {
    pub username: String,
    pub password_hash: String,
    pub roles: Vec<String>,
    /// Changes whenever the password does (or the user is removed and added again): tokens
    /// carry the epoch they were issued under, so a new password ends every older login.
    pub epoch: String,
}

/// 64 bits of SHA-256 over the user name and password hash, as hex. Derived from the config, so
/// every instance on the same config agrees without a shared store.
fn epoch(username: &str, password_hash: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(username.as_bytes());
    h.update([0]);
    h.update(password_hash.as_bytes());
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Debug, Default, Clone)]
pub struct Users(Arc<HashMap<String, User>>);

impl Users {
    /// The users of the file; their hashes were checked by `auth::build`.
    pub fn new(list: Vec<&UserConfig>) -> Users {
        let map = list
            .into_iter()
            .map(|u| {
                let user = User {
                    username: u.username.clone(),
                    password_hash: u.password_hash.clone(),
                    roles: u.roles.clone(),
                    epoch: epoch(&u.username, &u.password_hash),
                };
                (u.username.clone(), user)
            })
            .collect();
        Users(Arc::new(map))
    }

    /// Every user's name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The user named `username`, as the running config has it.
    pub fn get(&self, username: &str) -> Option<&User> {
        self.0.get(username)
    }

    /// Checks a password. Blocking (argon2 takes tens of milliseconds): run it off the async
    /// threads. Unknown user and wrong password take the same path and the same time.
    pub fn check(&self, username: &str, password: &str) -> Option<User> {
        let user = self.0.get(username);
        let hash = match user {
            Some(u) => u.password_hash.as_str(),
            None => DUMMY.as_deref()?,
        };
        let ok = PasswordHash::new(hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        user.filter(|_| ok).cloned()
    }
}

/// An argon2id hash (default parameters, random salt) for `auth.users[].password_hash`.
pub fn hash_password(password: &[u8]) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_check() {
        let hash = hash_password(b"s3cret").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        let users = Users::new(vec![&UserConfig {
            username: "ann".into(),
            password_hash: hash,
            roles: vec!["user".into()],
        }]);
        assert_eq!(
            users.check("ann", "s3cret").map(|u| u.roles),
            Some(vec!["user".to_owned()])
        );
        assert!(users.check("ann", "wrong").is_none());
        assert!(users.check("bob", "s3cret").is_none());
    }
}
