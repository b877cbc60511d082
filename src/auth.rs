//! Authentication: who is making a request. In standalone mode the only credential is the admin
//! bearer token written at first start; its holder is in `system:masters` and may do everything.

use http::HeaderMap;

/// An authenticated user, as Kubernetes `user.Info` describes one.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct User {
    /// User name.
    pub name: String,
    /// User uid (may be empty).
    pub uid: String,
    /// Groups, including `system:authenticated`.
    pub groups: Vec<String>,
    /// Extra attributes (`authentication.kubernetes.io/credential-id`, ...).
    pub extra: Vec<(String, Vec<String>)>,
}

impl User {
    /// Whether the user is in `system:masters` (always allowed).
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

/// The standalone admin's name.
pub const ADMIN_USER: &str = "admin";

/// Checks credentials of requests.
pub struct Authenticator {
    admin_token: Option<String>,
}

/// Compares secrets without leaking where they differ through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Authenticator {
    /// An authenticator accepting the admin token (none: nobody authenticates).
    pub fn new(admin_token: Option<String>) -> Authenticator {
        Authenticator { admin_token }
    }

    /// The user of a request, or `None` when it carries no valid credential.
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<User> {
        let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let expected = self.admin_token.as_deref()?;
        if constant_time_eq(token.trim().as_bytes(), expected.as_bytes()) {
            Some(User {
                name: ADMIN_USER.into(),
                uid: String::new(),
                groups: vec!["system:masters".into(), "system:authenticated".into()],
                extra: Vec::new(),
            })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[test]
    fn only_the_admin_token_authenticates() {
        let a = Authenticator::new(Some("s3cret".into()));
        assert!(
            a.authenticate(&headers("Bearer s3cret"))
                .unwrap()
                .is_master()
        );
        assert!(a.authenticate(&headers("bearer s3cret")).is_some());
        assert!(a.authenticate(&headers("Bearer s3cre")).is_none());
        assert!(a.authenticate(&headers("Basic s3cret")).is_none());
        assert!(a.authenticate(&HeaderMap::new()).is_none());
        assert!(
            Authenticator::new(None)
                .authenticate(&headers("Bearer s3cret"))
                .is_none()
        );
    }
}
