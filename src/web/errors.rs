//! What a page request that fails shows: an HTML page in French, or the
//! login page for a visitor without a session.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use maud::html;

use super::layout;
use crate::http::problem::{ApiError, ProblemType};

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("log in first")]
    LoginRequired { next: String },
    #[error("this role cannot see this page")]
    Forbidden,
    #[error("no such page")]
    NotFound,
    #[error("the form's anti-forgery token is missing or wrong")]
    Csrf,
    #[error("the form cannot be read")]
    BadRequest,
    #[error("the field {field} holds a control character")]
    InvalidText { field: String },
    #[error("{0}")]
    Api(ApiError),
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        match e.kind {
            ProblemType::NotFound => PageError::NotFound,
            ProblemType::Forbidden => PageError::Forbidden,
            ProblemType::Unauthorized => PageError::LoginRequired { next: "/".into() },
            _ => PageError::Api(e),
        }
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for PageError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<diesel::result::Error> for PageError {
    fn from(e: diesel::result::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl From<crate::keys::KeyError> for PageError {
    fn from(e: crate::keys::KeyError) -> Self {
        ApiError::from(e).into()
    }
}

/// What a refusal of the domain means, in the users' words.
pub fn explain(kind: ProblemType) -> &'static str {
    use ProblemType::*;
    match kind {
        ValidationError => {
            "Certaines informations ne sont pas valides : corrigez les champs signalés."
        }
        Unauthorized => "Connectez-vous pour continuer.",
        Forbidden => "Votre compte ne permet pas cette action.",
        NotFound | MethodNotAllowed => {
            "Cette page n'existe pas, ou elle concerne une autre organisation."
        }
        MalformedCode => "Ce code ne peut pas être lu.",
        InvalidSignature => "Ce coupon n'est pas authentique : sa signature est fausse.",
        UnknownKey => "Ce coupon a été signé par une clé inconnue.",
        VoucherExpired => "Ce coupon a expiré.",
        VoucherRevoked => "Ce coupon a été révoqué.",
        ProgramClosed => "Le programme est clos, ou sa période d'émission est terminée.",
        VenueNotAccredited => "Le lieu n'est pas habilité.",
        VenueOutOfTerritory => "Le lieu est hors du territoire du programme.",
        AlreadyRedeemed => "Ce coupon a déjà été utilisé.",
        QuotaExceeded => {
            "Votre dotation dans ce programme est épuisée : demandez-en une nouvelle au financeur."
        }
        BudgetExceeded => "Le budget du programme ne permet pas cette dotation.",
        IdempotencyConflict => "Cette demande a déjà été envoyée avec d'autres données.",
        NotCancellable => "Cet atelier ne peut plus être annulé.",
        Conflict => "L'état actuel ne permet pas cette action (elle a peut-être déjà été faite).",
        PayloadTooLarge => "Les données envoyées sont trop volumineuses.",
        UnsupportedMediaType => "Ce format de données n'est pas accepté.",
        RateLimited => "Trop de tentatives : patientez quinze minutes avant de réessayer.",
        Unavailable => {
            "Le service est momentanément indisponible : réessayez dans quelques instants."
        }
        Internal => "Une erreur inattendue s'est produite ; elle a été enregistrée.",
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::LoginRequired { .. } => StatusCode::SEE_OTHER,
            PageError::Forbidden | PageError::Csrf => StatusCode::FORBIDDEN,
            PageError::NotFound => StatusCode::NOT_FOUND,
            PageError::BadRequest => StatusCode::BAD_REQUEST,
            PageError::InvalidText { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            PageError::Api(e) => e.kind.status(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (title, text) = match self {
            PageError::LoginRequired { next } => {
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, super::login::login_url(next)))
                    .finish();
            }
            PageError::Forbidden => ("Accès refusé", explain(ProblemType::Forbidden)),
            PageError::NotFound => ("Page introuvable", explain(ProblemType::NotFound)),
            PageError::Csrf => (
                "Formulaire expiré",
                "Ce formulaire n'a pas pu être vérifié (il est peut-être trop ancien). Revenez à la page précédente, rechargez-la et recommencez.",
            ),
            PageError::BadRequest => (
                "Formulaire illisible",
                "Les données envoyées ne peuvent pas être lues. Rechargez la page et recommencez.",
            ),
            PageError::InvalidText { .. } => (
                "Formulaire refusé",
                "Un champ contient un caractère invisible qui n'y a pas sa place (souvent venu d'un copier-coller). Revenez à la page précédente, retapez ce champ et recommencez.",
            ),
            PageError::Api(e) => {
                if e.kind == ProblemType::Internal {
                    tracing::error!(problem = e.kind.slug(), detail = %e.detail, "page failed");
                }
                ("Action impossible", explain(e.kind))
            }
        };
        layout::respond(
            self.status_code(),
            layout::page(
                None,
                title,
                html! {
                    h1 { (title) }
                    p { (text) }
                    p { a href="/" { "Retour à l'accueil" } }
                },
            ),
        )
    }
}

impl PageError {
    /// The error page for a bare status the framework chose (a wrong
    /// method, say), keeping that status.
    pub fn page_for_status(status: StatusCode) -> HttpResponse {
        let error = match status.as_u16() {
            403 => PageError::Forbidden,
            400 | 413 | 415 | 422 => PageError::BadRequest,
            s if s < 500 => PageError::NotFound,
            _ => PageError::Api(ApiError::internal(format!("status {status}"))),
        };
        let mut page = error.error_response();
        *page.status_mut() = status;
        page
    }
}

/// Whether a request comes from a browser page rather than an API client.
pub fn wants_html(req: &HttpRequest) -> bool {
    !req.path().starts_with("/api/")
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
}
