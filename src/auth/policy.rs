//! A route's authentication policy (group settings overridden by the route's) and the check
//! that applies it to a request.

use super::{Auth, AuthEvent, Caller};
use crate::config::file::AuthPolicyConfig;
use crate::outcome::{Denial, ErrorCode};
use http::HeaderValue;
use pingora::http::RequestHeader;
use std::sync::Arc;

/// Effective authentication policy of a route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthPolicy {
    pub required: bool,
    pub roles: Vec<String>,
}

/// What checking a request against a policy gave.
pub struct AuthCheck {
    /// Who the caller is, when accepted.
    pub caller: Result<Arc<Caller>, Denial>,
    pub event: AuthEvent,
}

const INSUFFICIENT_SCOPE: &str = r#"Bearer realm="api-gateway", error="insufficient_scope""#;

impl AuthPolicy {
    /// What the admin API requires: a caller with the `admin` role.
    pub fn admin() -> AuthPolicy {
        AuthPolicy {
            required: true,
            roles: vec!["admin".to_owned()],
        }
    }

    /// Route settings over group settings, field by field. Roles imply `required: true`; an
    /// explicit `required: false` beside roles is an error (`Err` carries the roles).
    pub fn merge(
        group: Option<&AuthPolicyConfig>,
        route: Option<&AuthPolicyConfig>,
    ) -> Result<AuthPolicy, Vec<String>> {
        let levels = [route, group];
        let required = levels.iter().flatten().find_map(|a| a.required);
        let roles = levels
            .iter()
            .flatten()
            .find_map(|a| a.roles.clone())
            .unwrap_or_default();
        match required {
            Some(false) if !roles.is_empty() => Err(roles),
            _ => Ok(AuthPolicy {
                required: required.unwrap_or(!roles.is_empty()),
                roles,
            }),
        }
    }

    /// Authenticates `req` and checks the roles. `auth` is `None` only when the file has no
    /// `auth` section, which `gateway -t` rejects for a route that requires it.
    pub fn check(&self, auth: Option<&Auth>, req: &RequestHeader) -> AuthCheck {
        let Some(auth) = auth else {
            return AuthCheck {
                caller: Err(Denial::new(ErrorCode::Unauthorized)),
                event: AuthEvent::failure("missing"),
            };
        };
        match auth.authenticate(req) {
            Err(denied) => AuthCheck {
                caller: Err(Denial::new(denied.code())),
                event: AuthEvent::failure(denied.reason()),
            },
            Ok((caller, _)) if !caller.has_any(&self.roles) => AuthCheck {
                caller: Err(Denial::new(ErrorCode::Forbidden).with(
                    http::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(INSUFFICIENT_SCOPE),
                )),
                event: AuthEvent::failure("forbidden"),
            },
            Ok((caller, how)) => AuthCheck {
                caller: Ok(caller),
                event: AuthEvent::success(how),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(required: Option<bool>, roles: Option<&[&str]>) -> AuthPolicyConfig {
        AuthPolicyConfig {
            required,
            roles: roles.map(|r| r.iter().map(|s| (*s).to_owned()).collect()),
        }
    }

    fn merge(group: Option<&AuthPolicyConfig>, route: Option<&AuthPolicyConfig>) -> AuthPolicy {
        AuthPolicy::merge(group, route).expect("a consistent policy")
    }

    #[test]
    fn route_fields_override_group_fields_one_by_one() {
        let group = level(Some(true), Some(&["user"]));
        let merged = merge(Some(&group), Some(&level(None, Some(&["admin"]))));
        assert!(merged.required, "required comes from the group");
        assert_eq!(merged.roles, ["admin"], "roles come from the route");

        let open = level(Some(false), Some(&[]));
        let merged = merge(Some(&group), Some(&open));
        assert!(!merged.required, "a route may open what its group requires");
        assert!(
            merged.roles.is_empty(),
            "an empty list clears the group's roles"
        );

        assert_eq!(merge(None, None), AuthPolicy::default());
        assert_eq!(merge(None, Some(&group)), merge(Some(&group), None));
    }

    #[test]
    fn roles_imply_required_and_contradictions_are_refused() {
        let merged = merge(None, Some(&level(None, Some(&["admin"]))));
        assert!(
            merged.required,
            "roles without `required` still require a caller"
        );
        let group = level(Some(true), Some(&["user"]));
        let contradiction = AuthPolicy::merge(Some(&group), Some(&level(Some(false), None)));
        assert_eq!(contradiction, Err(vec!["user".to_owned()]));
    }
}
