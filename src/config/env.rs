//! `${NAME}` and `${NAME:-default}` substitution, applied to the raw file text before parsing.

/// A `${...}` that cannot be replaced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("unterminated ${{...}} at byte {0}")]
    Unterminated(usize),
    #[error("invalid variable name {name:?} in ${{{expr}}}")]
    BadName { name: String, expr: String },
    #[error("environment variable {0} is not set (${{{0}}})")]
    Unset(String),
}

/// Replaces every `${NAME}` / `${NAME:-default}` in `text` using `lookup`. `$$` is a literal `$`.
/// Returns the substituted text, or every variable that is unset and has no default.
pub fn substitute<F>(text: &str, lookup: F) -> Result<String, Vec<EnvError>>
where
    F: Fn(&str) -> Option<String>,
{
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body.find('}') else {
            missing.push(EnvError::Unterminated(pos));
            out.push_str(&rest[pos..]);
            rest = "";
            break;
        };
        let expr = &body[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (expr, None),
        };
        let valid_name =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid_name {
            missing.push(EnvError::BadName {
                name: name.to_owned(),
                expr: expr.to_owned(),
            });
        } else {
            match (lookup(name).filter(|v| !v.is_empty()), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => missing.push(EnvError::Unset(name.to_owned())),
            }
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("10.0.0.1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn replaces_and_defaults() {
        let text = "a: ${HOST}\nb: ${PORT:-8080}\nc: ${EMPTY:-x}\nd: $$HOME $5";
        assert_eq!(
            substitute(text, env).expect("all set"),
            "a: 10.0.0.1\nb: 8080\nc: x\nd: $HOME $5"
        );
    }

    #[test]
    fn reports_every_missing_variable() {
        let errors = substitute("${A} ${B:-ok} ${C} ${bad name}", env).expect_err("missing");
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert_eq!(errors[0], EnvError::Unset("A".into()));
        assert_eq!(errors[1], EnvError::Unset("C".into()));
        assert!(matches!(&errors[2], EnvError::BadName { name, .. } if name == "bad name"));
        assert_eq!(
            errors[0].to_string(),
            "environment variable A is not set (${A})"
        );
    }
}
