//! `POST /auth/login` (user name and password → JWT) and `GET /auth/me`.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Identity, Role, Viewer};
use crate::error::{ApiError, Json};
use crate::state::{AppState, RequestMeta};

/// The audit log's actor for a login under a name that is no user.
pub const UNKNOWN_USER: &str = "<unknown user>";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login)).routes(routes!(me))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(min_length = 1, max_length = 64)]
    pub username: String,
    #[schema(max_length = 1024)]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Epoch seconds.
    pub expires_at: u64,
    pub expires_in: u64,
    pub role: Role,
    pub username: String,
}

/// Logs in: a JWT for `Authorization: Bearer`. Wrong user or password: 401 (the same answer
/// for both). Attempts are rate-limited per address (the `auth` class) and, after 5 failures
/// in a row, per user from any address (429 `login_throttled`, the wait doubling from 1 s up to
/// 15 min); all are audited.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = LoginResponse),
    (status = 401, body = crate::error::ErrorBody),
    (status = 422, body = crate::error::ErrorBody),
    (status = 429, body = crate::error::ErrorBody),
))]
async fn login(
    State(state): State<AppState>,
    meta: RequestMeta,
    Json(body): Json<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    if body.username.is_empty() || body.username.len() > 64 || body.password.len() > 1024 {
        return Err(ApiError::unprocessable("invalid_body", "username: 1 to 64 characters; password: at most 1024")
            .with_details(json!({ "fields": ["username", "password"] })));
    }
    // A user with too many failures in a row waits, from any address, before a password is
    // even checked (login_guard.rs).
    let known = state.auth.has_user(&body.username);
    if known && let Err(wait) = state.auth.logins.check(&body.username, std::time::Instant::now()) {
        let caller = meta.caller(Identity { subject: body.username.clone(), role: Role::Viewer });
        let wait_s = wait.as_secs_f64().ceil() as u64;
        state
            .audit(
                &caller,
                "login",
                "/api/v1/auth/login",
                "refused",
                json!({ "reason": "throttled", "wait_s": wait_s }),
            )
            .await?;
        let mut e = ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "login_throttled",
            format!("too many failed logins for this user; try again in {wait_s} s"),
        )
        .with_details(json!({ "retry_after_s": wait_s }));
        e.retry_after = Some(wait_s.max(1));
        return Err(e);
    }
    let auth = state.auth.clone();
    let (user, password) = (body.username.clone(), body.password);
    // argon2 is deliberately slow: keep it off the async workers.
    let who = tokio::task::spawn_blocking(move || auth.check_password(&user, &password))
        .await
        .map_err(|e| ApiError::unavailable("password check", e))?;
    // A name that is no user is not written down: people type their password into the user
    // name field, and the audit log is read by every admin.
    let subject = if known { body.username.clone() } else { UNKNOWN_USER.to_string() };
    let caller = meta.caller(Identity { subject, role: Role::Viewer });
    let Some(who) = who else {
        if known {
            state.auth.logins.failed(&body.username, std::time::Instant::now());
        }
        let reason = if known { "wrong password" } else { "unknown user name (not recorded)" };
        state.audit(&caller, "login", "/api/v1/auth/login", "refused", json!({ "reason": reason })).await?;
        return Err(ApiError::unauthorized("wrong user name or password"));
    };
    state.auth.logins.succeeded(&who.subject);
    let (token, expires_at) = state.auth.issue(&who)?;
    state.audit(&caller, "login", "/api/v1/auth/login", "ok", json!({ "role": who.role })).await?;
    Ok(Json(LoginResponse {
        access_token: token,
        token_type: "bearer",
        expires_at,
        expires_in: state.auth.token_ttl_s,
        role: who.role,
        username: who.subject,
    }))
}

/// Who the credentials say the caller is.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = Identity),
    (status = 401, body = crate::error::ErrorBody),
))]
async fn me(Viewer(who): Viewer) -> Json<Identity> {
    Json(who)
}
