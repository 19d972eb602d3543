//! The OpenAPI document (`/api/openapi.json`) and its Swagger UI (`/api/docs`).

use utoipa::OpenApi;

use super::{health, jwks, problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "passnum API",
        description = "Signed workshop vouchers for the pass numérique: issue, redeem, reconcile. \
                       Every error is application/problem+json (RFC 9457)."
    ),
    paths(health::healthz, health::readyz, jwks::jwks),
    components(schemas(problem::Problem, problem::FieldError)),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "keys", description = "The published signing keys")
    )
)]
pub struct ApiDoc;
