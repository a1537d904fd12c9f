//! The claims of the tokens the gateway issues, and what it reads from any token it accepts.

use http::HeaderValue;
use serde::{Deserialize, Serialize};

pub const ACCESS: &str = "access";
pub const REFRESH: &str = "refresh";

/// Claims of a token. `typ` keeps a refresh token from ever passing as an access token; `fam`
/// ties every token of one login together so reuse of a rotated refresh token can revoke them
/// all. Tokens from another issuer (JWKS) may lack `jti`, `typ` and `fam`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    pub exp: u64,
    #[serde(default)]
    pub iat: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default)]
    pub jti: String,
    #[serde(default)]
    pub typ: Option<String>,
    #[serde(default)]
    pub fam: String,
    /// The user's epoch when the family was started (tokens of ours for built-in users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uep: Option<String>,
    /// When the family was started (the login), unix seconds: its absolute lifetime runs from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fat: Option<u64>,
}

/// `aud`: one audience, or several (as many identity providers send it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Claims {
    pub fn is_refresh(&self) -> bool {
        self.typ.as_deref() == Some(REFRESH)
    }
}

/// Who a request was authenticated as.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: String,
    pub roles: Vec<String>,
    /// `X-User-Id` and `X-User-Roles` values, checked and made once.
    pub subject_header: HeaderValue,
    pub roles_header: HeaderValue,
}

impl Caller {
    /// `None` when the subject or a role cannot be sent in a header (control characters such
    /// as CR or LF, even in a correctly signed token).
    pub fn new(subject: String, roles: Vec<String>) -> Option<Caller> {
        Some(Caller {
            subject_header: HeaderValue::from_str(&subject).ok()?,
            roles_header: HeaderValue::from_str(&roles.join(",")).ok()?,
            subject,
            roles,
        })
    }

    /// True when no role is required or the caller has at least one of them.
    pub fn has_any(&self, required: &[String]) -> bool {
        required.is_empty() || required.iter().any(|r| self.roles.contains(r))
    }
}
