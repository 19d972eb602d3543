//! Forms: the anti-forgery token every form carries, the extractor that
//! checks it before anything else, and fields whose errors are tied to them.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use maud::{html, Markup};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::errors::{explain, PageError};
use super::session::Session;
use crate::http::problem::{ApiError, ProblemType};
use crate::http::text;

/// One message for every e-mail address a form refuses, whatever the form.
pub const EMAIL_INVALID: &str = "Cette adresse e-mail n'est pas valide (exemple : nom@exemple.fr).";

/// One message for every required field left empty: "Saisissez {what} : ce champ est obligatoire."
pub fn required(what: &str) -> String {
    format!("Saisissez {what} : ce champ est obligatoire.")
}

/// The name of the hidden field holding the token.
pub const CSRF_FIELD: &str = "csrf_token";

pub fn csrf_field(session: &Session) -> Markup {
    token_field(&session.csrf_token)
}

pub fn token_field(token: &str) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(token); }
}

/// Whether the url-encoded `body` carries `expected` as its token, compared
/// in constant time.
pub fn carries_token(body: &[u8], expected: &str) -> bool {
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) else {
        return false;
    };
    let sent: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.as_str())
        .collect();
    matches!(sent.as_slice(), [one] if !expected.is_empty() && bool::from(one.as_bytes().ct_eq(expected.as_bytes())))
}

/// A posted form of a logged-in user, its token checked: a request without
/// the session's token is refused (403) before the handler runs.
pub struct Posted<T> {
    pub session: Session,
    pub form: T,
}

impl<T: DeserializeOwned + 'static> FromRequest for Posted<T> {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let session = Session::from_request(req, payload);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let session = session.await?;
            let body = body.await.map_err(|_| PageError::BadRequest)?;
            if !carries_token(&body, &session.csrf_token) {
                return Err(PageError::Csrf);
            }
            Ok(Posted {
                session,
                form: read(&body)?,
            })
        })
    }
}

/// Reads a url-encoded form, its text checked first (`http::text`): a
/// control character in a field is refused naming the field (422).
pub fn read<T: DeserializeOwned>(body: &[u8]) -> Result<T, PageError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|_| PageError::BadRequest)?;
    text::check_pairs(&pairs).map_err(|e| PageError::InvalidText {
        field: e
            .errors
            .first()
            .map(|f| f.field.clone())
            .unwrap_or_default(),
    })?;
    serde_urlencoded::from_bytes(body).map_err(|_| PageError::BadRequest)
}

/// The query string of a page (a search form, say), read as a form is.
pub struct Query<T>(pub T);

impl<T> std::ops::Deref for Query<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = PageError;
    type Future = std::future::Ready<Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(read(req.query_string().as_bytes()).map(Query))
    }
}

/// A form with no field but its token (logging out, closing a programme).
#[derive(Debug, serde::Deserialize)]
pub struct NoFields {}

/// The errors of a submitted form: one message per field, and one for the
/// whole form.
#[derive(Debug, Default)]
pub struct FormErrors {
    pub general: Option<String>,
    pub fields: Vec<(String, String)>,
    /// The domain's refusal, when there was one: it sets the status.
    refusal: Option<ProblemType>,
}

impl FormErrors {
    /// An error about the whole form.
    pub fn general(message: impl Into<String>, refusal: ProblemType) -> Self {
        FormErrors {
            general: Some(message.into()),
            fields: Vec::new(),
            refusal: Some(refusal),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.general.is_none() && self.fields.is_empty()
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, m)| m.as_str())
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.fields.push((field.to_owned(), message.into()));
    }

    /// Turns a refusal of the domain into what the form shows. `fields` maps
    /// each field the domain may name to the form's field and the message in
    /// French; a refusal that is not about the form (not found, database
    /// down, …) stays an error page.
    pub fn from_refusal(e: ApiError, fields: &[(&str, &str, &str)]) -> Result<Self, PageError> {
        match e.kind {
            ProblemType::NotFound
            | ProblemType::Forbidden
            | ProblemType::Unauthorized
            | ProblemType::Unavailable
            | ProblemType::Internal => return Err(e.into()),
            _ => {}
        }
        let mut errors = FormErrors {
            refusal: Some(e.kind),
            ..FormErrors::default()
        };
        for failed in &e.errors {
            match fields.iter().find(|(api, _, _)| *api == failed.field) {
                Some((_, form, message)) => errors.add(form, *message),
                None => {
                    tracing::warn!(field = %failed.field, "a refusal names a field the form lacks");
                    errors.general = Some(explain(e.kind).to_owned());
                }
            }
        }
        if errors.fields.is_empty() {
            errors.general = Some(explain(e.kind).to_owned());
        }
        Ok(errors)
    }

    /// The status of a page showing a form with these errors: 200 without
    /// any, else the refusal's (422 for the page's own checks).
    pub fn status(&self) -> actix_web::http::StatusCode {
        if self.is_empty() {
            return actix_web::http::StatusCode::OK;
        }
        self.refusal
            .map(ProblemType::status)
            .unwrap_or(actix_web::http::StatusCode::UNPROCESSABLE_ENTITY)
    }

    /// The box at the top of a form shown again: what went wrong, with a
    /// link to each field.
    pub fn summary(&self) -> Markup {
        html! {
            @if !self.is_empty() {
                div.alert.alert--error role="alert" tabindex="-1" autofocus #erreurs {
                    h2.alert__title { "Le formulaire n'a pas été envoyé" }
                    @if let Some(general) = &self.general {
                        p { (general) }
                    }
                    @if !self.fields.is_empty() {
                        ul {
                            @for (field, message) in &self.fields {
                                li { a href={ "#" (field) } { (message) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One input with its label, hint and error, tied by `aria-describedby`.
pub struct Input<'a> {
    pub name: &'a str,
    pub label: &'a str,
    pub value: &'a str,
    pub kind: &'a str,
    pub hint: Option<&'a str>,
    pub required: bool,
    pub autocomplete: Option<&'a str>,
    pub inputmode: Option<&'a str>,
    pub pattern: Option<&'a str>,
}

impl<'a> Input<'a> {
    pub fn text(name: &'a str, label: &'a str, value: &'a str) -> Self {
        Input {
            name,
            label,
            value,
            kind: "text",
            hint: None,
            required: true,
            autocomplete: None,
            inputmode: None,
            pattern: None,
        }
    }

    pub fn kind(mut self, kind: &'a str) -> Self {
        self.kind = kind;
        self
    }

    pub fn hint(mut self, hint: &'a str) -> Self {
        self.hint = Some(hint);
        self
    }

    pub fn optional(mut self) -> Self {
        self.required = false;
        self
    }

    pub fn autocomplete(mut self, autocomplete: &'a str) -> Self {
        self.autocomplete = Some(autocomplete);
        self
    }

    pub fn numeric(mut self, pattern: &'a str) -> Self {
        self.inputmode = Some("numeric");
        self.pattern = Some(pattern);
        self
    }

    pub fn render(&self, errors: &FormErrors) -> Markup {
        let error = errors.field(self.name);
        let hint_id = format!("{}-aide", self.name);
        let error_id = format!("{}-erreur", self.name);
        let described = [
            self.hint.map(|_| hint_id.as_str()),
            error.map(|_| error_id.as_str()),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        html! {
            div.field.field--error[error.is_some()] {
                label.field__label for=(self.name) {
                    (self.label)
                    @if !self.required { " " span.field__optional { "(facultatif)" } }
                }
                @if let Some(hint) = self.hint {
                    p.field__hint id=(hint_id) { (hint) }
                }
                @if let Some(error) = error {
                    p.field__error id=(error_id) { span.visually-hidden { "Erreur : " } (error) }
                }
                input.field__input id=(self.name) name=(self.name) type=(self.kind) value=(self.value)
                    required[self.required]
                    autocomplete=[self.autocomplete]
                    inputmode=[self.inputmode]
                    pattern=[self.pattern]
                    aria-invalid=[error.map(|_| "true")]
                    aria-describedby=[(!described.is_empty()).then_some(described.as_str())];
            }
        }
    }
}

/// A group of radio buttons (`fieldset` and `legend`), with its error.
pub fn radios(
    name: &str,
    legend: &str,
    options: &[(&str, &str)],
    checked: &str,
    errors: &FormErrors,
) -> Markup {
    let error = errors.field(name);
    let error_id = format!("{name}-erreur");
    html! {
        fieldset.field.field--error[error.is_some()] #(name)
            aria-describedby=[error.map(|_| error_id.as_str())] {
            legend.field__label { (legend) }
            @if let Some(error) = error {
                p.field__error id=(error_id) { span.visually-hidden { "Erreur : " } (error) }
            }
            div.radios {
                @for (value, label) in options {
                    @let id = format!("{name}-{value}");
                    div.radio {
                        input type="radio" id=(id) name=(name) value=(value) checked[*value == checked] required;
                        label for=(id) { (label) }
                    }
                }
            }
        }
    }
}

/// A drop-down list, with its error.
pub fn select(
    name: &str,
    label: &str,
    options: &[(String, String)],
    selected: &str,
    errors: &FormErrors,
) -> Markup {
    let error = errors.field(name);
    let error_id = format!("{name}-erreur");
    html! {
        div.field.field--error[error.is_some()] {
            label.field__label for=(name) { (label) }
            @if let Some(error) = error {
                p.field__error id=(error_id) { span.visually-hidden { "Erreur : " } (error) }
            }
            select.field__input id=(name) name=(name) required
                aria-invalid=[error.map(|_| "true")]
                aria-describedby=[error.map(|_| error_id.as_str())] {
                @for (value, text) in options {
                    option value=(value) selected[value == selected] { (text) }
                }
            }
        }
    }
}

/// An optional text field: `None` when left blank.
pub fn blank_to_none(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}
