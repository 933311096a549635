//! Authentication and roles.
//!
//! - Users (config `[[edge.user]]`, plus the `admin` that `tradeflow up` creates) log in with
//!   `POST /api/v1/auth/login` and get an HS256 JWT with an expiry; argon2 password hashes.
//! - Machines send `X-API-Key`; the config holds only the key's SHA-256, and a presented key's
//!   digest is compared with every configured one in constant time ([`crate::secret::equal`]).
//!   Password hashes are checked by argon2, whose final comparison is constant-time too.
//! - Roles are ordered viewer < trader < admin. A route names the least role it needs through
//!   its extractor ([`Viewer`], [`Trader`], [`Admin`]). No credentials: 401 (or an anonymous
//!   viewer on read routes when `anonymous_read` is on); bad or expired credentials: 401; a
//!   role too weak: 403.
//!
//! The signing secret is never logged or returned: [`Auth`]'s `Debug` leaves it out.

use std::collections::HashMap;
use std::sync::Arc;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::config::EdgeConfig;
use crate::error::ApiError;
use crate::state::AppState;

pub const API_KEY_HEADER: &str = "x-api-key";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Trader,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Trader => "trader",
            Role::Admin => "admin",
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Identity {
    /// User name, `key:<name>` for an API key, `anonymous`.
    pub subject: String,
    pub role: Role,
}

impl Identity {
    pub fn anonymous() -> Self {
        Identity { subject: "anonymous".into(), role: Role::Viewer }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    iat: u64,
    exp: u64,
}

#[derive(Clone)]
struct User {
    hash: String,
    role: Role,
}

/// Users, API keys and the token keys.
pub struct Auth {
    users: HashMap<String, User>,
    /// (sha-256 of the key, name, role).
    api_keys: Vec<([u8; 32], String, Role)>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub token_ttl_s: u64,
    pub anonymous_read: bool,
    /// A valid hash to verify against when the user is unknown, so that the answer takes as
    /// long as for a known user (no user enumeration by timing).
    decoy: String,
    /// Failed logins per user.
    pub logins: crate::login_guard::LoginGuard,
    /// The previous signing secret's key during a rotation: tokens it signed are accepted
    /// until they expire; new tokens are signed with the current one.
    previous: Option<DecodingKey>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("api_keys", &self.api_keys.len())
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("the JWT signing secret is missing: set {env} (at least 32 bytes) or run with --dev")]
    MissingSecret { env: String },
    #[error("the JWT signing secret in {env} is too short: at least 32 bytes are required")]
    ShortSecret { env: String },
    #[error("cannot hash the password of {user}: {reason}")]
    Hash { user: String, reason: String },
    #[error(transparent)]
    Random(#[from] crate::secret::SecretError),
}

/// Hashes a password into an argon2id PHC string (default parameters, a 16-byte salt from the
/// operating system's generator).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = crate::secret::bytes::<16>().map_err(|e| e.to_string())?;
    let salt = argon2::password_hash::SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// The hex SHA-256 of an API key, as `[[edge.api_key]] key_sha256` wants it.
pub fn api_key_digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl Auth {
    /// `secret`: the signing secret (None outside dev mode is an error; in dev mode a random
    /// one is made up). `extra_users`: (name, PHC hash, role) added to the configured users.
    pub fn new(
        config: &EdgeConfig,
        secret: Option<Vec<u8>>,
        extra_users: Vec<(String, String, Role)>,
    ) -> Result<Auth, AuthSetupError> {
        let secret = match secret {
            Some(s) if s.len() < 32 => return Err(AuthSetupError::ShortSecret { env: config.jwt_secret_env.clone() }),
            Some(s) => s,
            None if config.dev => crate::secret::jwt_secret()?.into_bytes(),
            None => return Err(AuthSetupError::MissingSecret { env: config.jwt_secret_env.clone() }),
        };
        let mut users: HashMap<String, User> = config
            .users
            .iter()
            .map(|u| (u.name.clone(), User { hash: u.password_hash.clone(), role: u.role }))
            .collect();
        for (name, hash, role) in extra_users {
            users.insert(name, User { hash, role });
        }
        let api_keys = config
            .api_keys
            .iter()
            .filter_map(|k| {
                let bytes: [u8; 32] = hex::decode(&k.key_sha256).ok()?.try_into().ok()?;
                Some((bytes, k.name.clone(), k.role))
            })
            .collect();
        let decoy = hash_password(&crate::secret::password()?)
            .map_err(|reason| AuthSetupError::Hash { user: "<decoy>".into(), reason })?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Auth {
            users,
            api_keys,
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            validation,
            token_ttl_s: config.token_ttl_s,
            anonymous_read: config.anonymous_read,
            decoy,
            logins: crate::login_guard::LoginGuard::default(),
            previous: None,
        })
    }

    /// Also accepts tokens signed with `secret` (the one being rotated out), until they
    /// expire.
    /// `env`: where it came from, for the error.
    pub fn with_previous_secret(mut self, secret: &[u8], env: &str) -> Result<Auth, AuthSetupError> {
        if secret.len() < 32 {
            return Err(AuthSetupError::ShortSecret { env: env.into() });
        }
        self.previous = Some(DecodingKey::from_secret(secret));
        Ok(self)
    }

    /// Whether `name` is a user (configured, or made by `tradeflow up`).
    pub fn has_user(&self, name: &str) -> bool {
        self.users.contains_key(name)
    }

    /// Checks a password (blocking: argon2 takes tens of milliseconds by design).
    pub fn check_password(&self, user: &str, password: &str) -> Option<Identity> {
        let (hash, role) = match self.users.get(user) {
            Some(u) => (u.hash.as_str(), Some(u.role)),
            None => (self.decoy.as_str(), None),
        };
        let ok = PasswordHash::new(hash)
            .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
            .unwrap_or(false);
        match (ok, role) {
            (true, Some(role)) => Some(Identity { subject: user.to_string(), role }),
            _ => None,
        }
    }

    /// A token for `who`, and its expiry (epoch seconds).
    pub fn issue(&self, who: &Identity) -> Result<(String, u64), ApiError> {
        let now = tradeflow_core::time::now_ms() as u64 / 1000;
        let claims = Claims { sub: who.subject.clone(), role: who.role, iat: now, exp: now + self.token_ttl_s };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map(|t| (t, claims.exp))
            .map_err(|e| ApiError::unavailable("token signing", e))
    }

    fn verify_token(&self, token: &str) -> Result<Identity, ApiError> {
        // The algorithm is pinned (HS256 only: `none` and every other algorithm are refused
        // before a signature is looked at), `exp` is required and checked (5 s leeway).
        let mut decoded = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation);
        if let (Err(e), Some(previous)) = (&decoded, &self.previous)
            && matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature)
        {
            decoded = jsonwebtoken::decode::<Claims>(token, previous, &self.validation);
        }
        let data = decoded.map_err(|e| {
            let why = match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token has expired",
                jsonwebtoken::errors::ErrorKind::InvalidSignature => "the token's signature is invalid",
                _ => "the token is malformed",
            };
            ApiError::unauthorized(why)
        })?;
        Ok(Identity { subject: data.claims.sub, role: data.claims.role })
    }

    fn verify_key(&self, key: &str) -> Result<Identity, ApiError> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        // Every configured digest is compared, each in constant time, with no early exit: the
        // answer's timing says nothing about which key, or how much of one, matched.
        let mut found = None;
        for (known, name, role) in &self.api_keys {
            if crate::secret::equal(known, &digest) {
                found = Some((name, *role));
            }
        }
        match found {
            Some((name, role)) => Ok(Identity { subject: format!("key:{name}"), role }),
            None => Err(ApiError::unauthorized("unknown API key")),
        }
    }

    /// The caller's identity from the request headers: `Some` with credentials, `None`
    /// without; bad credentials are an error (never silently anonymous).
    pub fn identify(&self, parts: &Parts) -> Result<Option<Identity>, ApiError> {
        if let Some(v) = parts.headers.get(AUTHORIZATION) {
            let v = v.to_str().map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
            let token = v
                .strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .ok_or_else(|| ApiError::unauthorized("expected `Authorization: Bearer <token>`"))?;
            return self.verify_token(token.trim()).map(Some);
        }
        if let Some(v) = parts.headers.get(API_KEY_HEADER) {
            let v = v.to_str().map_err(|_| ApiError::unauthorized("the X-API-Key header is not text"))?;
            return self.verify_key(v.trim()).map(Some);
        }
        Ok(None)
    }

    fn require(&self, parts: &Parts, least: Role) -> Result<Identity, ApiError> {
        let who = match self.identify(parts)? {
            Some(who) => who,
            None if least == Role::Viewer && self.anonymous_read => Identity::anonymous(),
            None => {
                return Err(ApiError::unauthorized("authentication required: a bearer token or an X-API-Key")
                    .with_details(serde_json::json!({ "required_role": least.as_str() })));
            }
        };
        if who.role < least {
            return Err(ApiError::forbidden(format!(
                "{} has role {}; this route needs {}",
                who.subject,
                who.role.as_str(),
                least.as_str()
            ))
            .with_details(serde_json::json!({ "role": who.role.as_str(), "required_role": least.as_str() })));
        }
        Ok(who)
    }
}

macro_rules! role_extractor {
    ($name:ident, $role:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone)]
        pub struct $name(pub Identity);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
                state.auth.require(parts, $role).map($name)
            }
        }
    };
}

role_extractor!(Viewer, Role::Viewer, "A caller with at least the viewer role (or anonymous, when reads are open).");
role_extractor!(Trader, Role::Trader, "A caller with at least the trader role.");
role_extractor!(Admin, Role::Admin, "A caller with the admin role.");

/// Shared handle.
pub type SharedAuth = Arc<Auth>;

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(anonymous_read: bool) -> Auth {
        let config = EdgeConfig {
            anonymous_read,
            api_keys: vec![crate::config::ApiKeyConfig {
                name: "grafana".into(),
                key_sha256: api_key_digest("k-123"),
                role: Role::Viewer,
            }],
            ..EdgeConfig::default()
        };
        let hash = hash_password("s3cret").unwrap();
        Auth::new(&config, Some(vec![7; 32]), vec![("ops".into(), hash, Role::Trader)]).unwrap()
    }

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = axum::http::Request::builder();
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn passwords_tokens_keys_and_roles() {
        let a = auth(false);
        assert!(a.check_password("ops", "wrong").is_none());
        assert!(a.check_password("nobody", "s3cret").is_none());
        let who = a.check_password("ops", "s3cret").unwrap();
        assert_eq!(who.role, Role::Trader);
        let (token, _) = a.issue(&who).unwrap();
        let bearer = format!("Bearer {token}");
        assert_eq!(a.require(&parts(&[("authorization", &bearer)]), Role::Trader).unwrap().subject, "ops");
        assert_eq!(a.require(&parts(&[("authorization", &bearer)]), Role::Admin).unwrap_err().status, 403);
        assert_eq!(a.require(&parts(&[]), Role::Viewer).unwrap_err().status, 401);
        assert_eq!(a.require(&parts(&[("authorization", "Bearer x.y.z")]), Role::Viewer).unwrap_err().status, 401);
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        let e = a.require(&parts(&[("authorization", &format!("Bearer {tampered}"))]), Role::Viewer).unwrap_err();
        assert_eq!(e.status, 401);
        assert_eq!(a.require(&parts(&[("x-api-key", "k-123")]), Role::Viewer).unwrap().subject, "key:grafana");
        assert_eq!(a.require(&parts(&[("x-api-key", "k-124")]), Role::Viewer).unwrap_err().status, 401);
        assert_eq!(a.require(&parts(&[("x-api-key", "k-123")]), Role::Trader).unwrap_err().status, 403);
        // A token signed with another secret is refused.
        let other = Auth::new(&EdgeConfig::default(), Some(vec![8; 32]), vec![]).unwrap();
        let (foreign, _) = other.issue(&who).unwrap();
        assert_eq!(
            a.require(&parts(&[("authorization", &format!("Bearer {foreign}"))]), Role::Viewer).unwrap_err().status,
            401
        );
    }

    #[test]
    fn tokens_of_another_algorithm_expired_or_from_a_rotated_secret() {
        let a = auth(false);
        let bearer = |t: &str| parts(&[("authorization", &format!("Bearer {t}"))]);
        let now = tradeflow_core::time::now_ms() as u64 / 1000;
        let claims = |exp: u64| Claims { sub: "ops".into(), role: Role::Admin, iat: now, exp };
        // `alg: none` (an unsigned token claiming admin until 2100) and HS512 with the right
        // secret: refused.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJvcHMiLCJyb2xlIjoiYWRtaW4iLCJpYXQiOjEsImV4cCI6NDEwMjQ0NDgwMH0.";
        assert_eq!(a.require(&bearer(none), Role::Viewer).unwrap_err().status, 401);
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims(now + 60),
            &EncodingKey::from_secret(&[7; 32]),
        )
        .unwrap();
        assert_eq!(a.require(&bearer(&hs512), Role::Viewer).unwrap_err().status, 401);
        // Expired (past the 5 s leeway): refused, saying so.
        let old = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(now - 60),
            &EncodingKey::from_secret(&[7; 32]),
        )
        .unwrap();
        let e = a.require(&bearer(&old), Role::Viewer).unwrap_err();
        assert_eq!((e.status.as_u16(), e.message.as_str()), (401, "the token has expired"));
        // A rotation: the old secret's tokens stay valid beside the new one's; a third is not.
        let old_secret = Auth::new(&EdgeConfig::default(), Some(vec![9; 32]), vec![]).unwrap();
        let who = Identity { subject: "ops".into(), role: Role::Trader };
        let (from_old, _) = old_secret.issue(&who).unwrap();
        assert_eq!(a.require(&bearer(&from_old), Role::Viewer).unwrap_err().status, 401);
        let rotated = auth(false).with_previous_secret(&[9; 32], "PREV").unwrap();
        assert_eq!(rotated.require(&bearer(&from_old), Role::Trader).unwrap().subject, "ops");
        let (from_new, _) = rotated.issue(&who).unwrap();
        assert_eq!(rotated.require(&bearer(&from_new), Role::Trader).unwrap().subject, "ops");
        let third = Auth::new(&EdgeConfig::default(), Some(vec![10; 32]), vec![]).unwrap().issue(&who).unwrap().0;
        assert_eq!(rotated.require(&bearer(&third), Role::Viewer).unwrap_err().status, 401);
        assert!(matches!(auth(false).with_previous_secret(&[1; 8], "PREV"), Err(AuthSetupError::ShortSecret { .. })));
    }

    #[test]
    fn anonymous_reads_only_when_opened() {
        let open = auth(true);
        assert_eq!(open.require(&parts(&[]), Role::Viewer).unwrap().subject, "anonymous");
        assert_eq!(open.require(&parts(&[]), Role::Trader).unwrap_err().status, 401);
        // Bad credentials are never downgraded to anonymous.
        assert_eq!(open.require(&parts(&[("x-api-key", "nope")]), Role::Viewer).unwrap_err().status, 401);
    }

    #[test]
    fn the_secret_is_required_outside_dev_and_never_printed() {
        let e = Auth::new(&EdgeConfig::default(), None, vec![]).unwrap_err();
        assert!(e.to_string().contains("TRADEFLOW_JWT_SECRET"));
        assert!(matches!(
            Auth::new(&EdgeConfig::default(), Some(vec![1; 8]), vec![]),
            Err(AuthSetupError::ShortSecret { .. })
        ));
        let dev = Auth::new(&EdgeConfig { dev: true, ..EdgeConfig::default() }, None, vec![]).unwrap();
        assert!(format!("{dev:?}").contains("<redacted>"));
    }
}
