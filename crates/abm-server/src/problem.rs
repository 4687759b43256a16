//! Errors on the wire: RFC 9457 problem details (`application/problem+json`).

use abm_app::AppError;
use abm_store::StoreError;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer (RFC 9457).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` when the status says it all).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("https://abm.invalid/problems/{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::CONFLICT, "conflict", detail)
    }

    pub fn internal(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut r = (status, body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

impl From<AppError> for Problem {
    fn from(e: AppError) -> Problem {
        let detail = e.to_string();
        match &e {
            AppError::Invalid(_) | AppError::Ingest(_) | AppError::Config(_) => {
                Problem::bad_request(detail)
            }
            AppError::TooManyItems { .. } => {
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too-many-items", detail)
            }
            AppError::Store(s) => match s {
                StoreError::NoAccount(_)
                | StoreError::AccountWaiting { .. }
                | StoreError::NoCheckpoint(_)
                | StoreError::NoToken(_)
                | StoreError::UnknownRun(_) => Problem::not_found(detail),
                StoreError::NoRun | StoreError::NoRuns | StoreError::NoAccounts => {
                    Problem::new(StatusCode::NOT_FOUND, "no-run", detail)
                }
                StoreError::Busy { .. } => Problem::new(StatusCode::CONFLICT, "busy", detail),
                StoreError::NotPending { .. }
                | StoreError::Stale { .. }
                | StoreError::AsOfBeforeLatest { .. }
                | StoreError::TokenExists(_) => Problem::conflict(detail),
                StoreError::TokenName(_) | StoreError::Ingest(_) | StoreError::Config(_) => {
                    Problem::bad_request(detail)
                }
                _ => {
                    tracing::error!(error = %detail, "store error");
                    Problem::internal("the store failed; see the server log")
                }
            },
            _ => {
                tracing::error!(error = %detail, "error");
                Problem::internal("the server failed; see the server log")
            }
        }
    }
}
