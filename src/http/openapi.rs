//! The OpenAPI document (`/api/openapi.json`) and its Swagger UI (`/api/docs`).
//!
//! Each operation states its own answers; `Problems` adds the ones every
//! operation of its kind can give (401 and 403 where a token is needed, 404
//! on an object path, 422 and 413 for a body, 503 for the database), and
//! `TextRules` writes the rule of `http::text` into every text field a
//! request carries, so the document admits exactly what the server takes.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::{ArrayBuilder, ArrayItems, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Object, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{
    books, health, invoices, keys, log, offline, organisations, pagination, problem, programs,
    redemptions, session, statements, users,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "passnum API",
        description = "Signed workshop vouchers for the pass numérique: issue, redeem, reconcile. \
                       Every error is application/problem+json (RFC 9457)."
    ),
    paths(
        health::healthz,
        health::readyz,
        keys::jwks,
        keys::rotate,
        session::token,
        session::me,
        organisations::create,
        organisations::list,
        organisations::accredit,
        organisations::withdraw,
        users::create,
        users::deactivate,
        programs::create,
        programs::list,
        programs::get,
        programs::allocate,
        programs::close,
        programs::stats,
        books::issue,
        books::list,
        books::get,
        books::revoke,
        books::replace,
        books::pdf,
        books::send,
        books::renew_page_link,
        books::qr_svg,
        books::qr_png,
        redemptions::themes,
        redemptions::check,
        redemptions::redeem,
        redemptions::list,
        redemptions::get,
        redemptions::cancel,
        redemptions::reverse,
        redemptions::audit_trail,
        offline::register,
        offline::list_devices,
        offline::revoke_device,
        offline::sync,
        offline::batch,
        offline::conflicts,
        offline::resolve,
        statements::close,
        statements::list,
        statements::get,
        statements::csv,
        statements::live,
        statements::pay,
        statements::pdf,
        invoices::venue_details,
        invoices::save_venue_details,
        invoices::buyer_details,
        invoices::save_buyer_details,
        invoices::list,
        invoices::invoice_pdf,
        invoices::invoice_xml,
        invoices::credit_note_pdf,
        invoices::credit_note_xml,
        log::checkpoint,
        log::key,
        log::tile,
        log::raise_alarm,
        log::alarms,
    ),
    components(schemas(problem::Problem, problem::FieldError, pagination::Page<crate::domain::organisations::Organisation>,
        pagination::Page<crate::domain::programs::Program>, pagination::Page<crate::domain::books::Book>,
        pagination::Page<crate::domain::redemptions::Redemption>, pagination::Page<crate::domain::redemptions::AuditEvent>,
        pagination::Page<crate::domain::devices::Device>, pagination::Page<crate::domain::batch::Conflict>,
        pagination::Page<crate::domain::statements::Summary>, pagination::Page<crate::domain::invoices::IssuedSummary>, pagination::Page<log::Alarm>)),
    modifiers(&BearerAuth, &Problems, &TextRules),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "keys", description = "The published signing keys"),
        (name = "accounts", description = "Logging in and user accounts"),
        (name = "organisations", description = "Operator, funders, issuers and venues"),
        (name = "programs", description = "Funders' programmes and allocations"),
        (name = "books", description = "Books of signed vouchers"),
        (name = "redemptions", description = "Checking and redeeming vouchers at venues"),
        (name = "offline", description = "Scanner devices, sync, offline batches and conflicts"),
        (name = "statements", description = "Signed statements for funders and venues"),
        (name = "invoices", description = "Factur-X invoices and credit notes drawn from venues' extracts"),
        (name = "log", description = "The public transparency log of every money event (C2SP tlog-tiles, tlog-checkpoint, signed-note)")
    )
)]
pub struct ApiDoc;

/// Declares the bearer token the protected endpoints take.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Schemas built from the lists the server checks against, for
/// `#[schema(schema_with = …)]`: the document and the checks cannot drift.
fn text_enum(values: impl IntoIterator<Item = serde_json::Value>, nullable: bool) -> Object {
    let types = if nullable {
        SchemaType::Array(vec![Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    let mut values: Vec<serde_json::Value> = values.into_iter().collect();
    if nullable {
        values.push(serde_json::Value::Null);
    }
    ObjectBuilder::new()
        .schema_type(types)
        .enum_values(Some(values))
        .build()
}

/// The codes of `GET /api/v1/themes`.
pub fn theme_codes() -> Object {
    text_enum(
        crate::domain::themes::THEMES.iter().map(|t| t.code.into()),
        false,
    )
}

/// The codes of the départements, at least one.
pub fn departement_codes() -> utoipa::openapi::schema::Array {
    let codes = crate::geo::Communes::shared()
        .departements()
        .iter()
        .map(|d| d.as_str().into());
    ArrayBuilder::new()
        .items(text_enum(codes, false))
        .min_items(Some(1))
        .build()
}

/// IANA time zone names, or none (Europe/Paris).
pub fn time_zones() -> Object {
    text_enum(
        chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name().into()),
        true,
    )
}

pub fn book_sizes() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .enum_values(Some(
            crate::voucher::BOOK_SIZES.iter().map(|s| i64::from(*s)),
        ))
        .build()
}

/// The French VAT rates in basis points, or none (exempt).
pub fn vat_rates() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::Integer, Type::Null]))
        .enum_values(Some(
            crate::domain::invoices::details::VAT_RATES
                .iter()
                .map(|r| serde_json::Value::from(*r))
                .chain(std::iter::once(serde_json::Value::Null)),
        ))
        .build()
}

pub fn decisions() -> Object {
    text_enum(["pay".into(), "reject".into()], false)
}

pub fn rotated_purposes() -> Object {
    text_enum(["voucher".into(), "statement".into(), "log".into()], false)
}

/// `?kind=` of the organisations list: a role, or empty for all.
pub fn kinds() -> Object {
    text_enum(
        std::iter::once("".into()).chain(crate::auth::Role::ALL.iter().map(|r| r.as_str().into())),
        true,
    )
}

/// The workshop of an offline scan: the same fields as a redemption's, but
/// a value the server refuses makes that item `rejected`, not the batch, so
/// the batch's schema admits any.
#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct OfflineWorkshop {
    /// A code of `GET /api/v1/themes`.
    theme: String,
    #[schema(pattern = r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    held_on: chrono::NaiveDate,
    /// 15 to 480.
    duration_minutes: i32,
}

/// The operations of a path, with their methods.
fn operations(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("GET", item.get.as_mut()),
        ("POST", item.post.as_mut()),
        ("PUT", item.put.as_mut()),
        ("PATCH", item.patch.as_mut()),
        ("DELETE", item.delete.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.map(|op| (method, op)))
    .collect()
}

/// The methods each path of the API takes (the `Allow` of a 405), from the
/// document itself: one list, never out of step with the routes. Paths are
/// compared with their parameters unnamed (`/statements/{}/invoices/{}`), so
/// a route that names a parameter otherwise than the document still matches.
pub fn allowed_methods(pattern: &str) -> Option<&'static str> {
    static ALLOWED: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
        let mut doc = ApiDoc::openapi();
        doc.paths
            .paths
            .iter_mut()
            .map(|(path, item)| {
                let methods: Vec<&str> = operations(item).into_iter().map(|(m, _)| m).collect();
                (unnamed(path), methods.join(", "))
            })
            .collect()
    });
    ALLOWED.get(&unnamed(pattern)).map(String::as_str)
}

/// A path pattern with each `{name}` made `{}`.
fn unnamed(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut in_name = false;
    for c in pattern.chars() {
        match c {
            '{' => {
                in_name = true;
                out.push('{');
            }
            '}' => {
                in_name = false;
                out.push('}');
            }
            _ if in_name => {}
            c => out.push(c),
        }
    }
    out
}

/// The problem answers shared by many operations, as components.
const SHARED: [(&str, &str, &str); 6] = [
    ("401", "Unauthorized", "`unauthorized`: no bearer token, or one refused (expired, unknown key, user deactivated). `WWW-Authenticate: Bearer`."),
    ("403", "Forbidden", "`forbidden`: the caller's role (or a device token) does not allow this."),
    ("404", "NotFound", "`not-found`: no such object, or one of another organisation."),
    ("413", "PayloadTooLarge", "`payload-too-large`: the body is over 64 KiB (1 MiB for batches)."),
    ("422", "ValidationError", "`validation-error`: the body or the query is not valid; `errors` names each field by its path."),
    ("503", "Unavailable", "`unavailable`: the database (or the mail server) cannot be reached; try again after `Retry-After` seconds."),
];

fn problem_response(description: &str, status: &str) -> Response {
    let mut response = ResponseBuilder::new().description(description).content(
        super::problem::PROBLEM_JSON,
        Content::new(Some(Ref::from_schema_name("Problem"))),
    );
    let integer = || Header::new(Object::with_type(Type::Integer));
    match status {
        "401" => {
            response = response.header("WWW-Authenticate", Header::default());
        }
        "429" | "503" => {
            let mut header = integer();
            header.description = Some("Seconds to wait before trying again".into());
            response = response.header("Retry-After", header);
        }
        _ => {}
    }
    response.build()
}

/// Adds the answers an operation gives by its kind, unless it states them itself.
struct Problems;

impl Modify for Problems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (status, name, description) in SHARED {
            components.responses.insert(
                name.to_owned(),
                RefOr::T(problem_response(description, status)),
            );
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let on_object = path.contains('{');
            for (_, op) in operations(item) {
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let has_body = op.request_body.is_some();
                let has_query = op
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| p.parameter_in == ParameterIn::Query);
                let answers = &mut op.responses.responses;
                let mut add = |status: &str, applies: bool| {
                    if applies && !answers.contains_key(status) {
                        let name = SHARED
                            .iter()
                            .find(|(s, _, _)| *s == status)
                            .map(|(_, n, _)| *n);
                        if let Some(name) = name {
                            answers.insert(
                                status.to_owned(),
                                RefOr::Ref(Ref::from_response_name(name)),
                            );
                        }
                    }
                };
                add("401", secured);
                add("403", secured);
                add("404", on_object);
                add("413", has_body);
                add("422", has_body || has_query);
                add("503", path != "/healthz");
                // A status stated with a description only gets the problem body.
                for (status, answer) in answers.iter_mut() {
                    if let RefOr::T(response) = answer {
                        if (status.starts_with('4') || status.starts_with('5'))
                            && response.content.is_empty()
                        {
                            let description = response.description.clone();
                            *response = problem_response(&description, status);
                        }
                    }
                }
            }
        }
    }
}

/// Writes the text rule into every string a request carries that has no
/// pattern, format or enum of its own: the body schemas (and the schemas
/// they refer to) and the query parameters. A field with a minimum length
/// is trimmed by the server, so it must hold more than spaces.
struct TextRules;

impl Modify for TextRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut referred = BTreeSet::new();
        for item in openapi.paths.paths.values_mut() {
            for (_, op) in operations(item) {
                for content in op
                    .request_body
                    .iter_mut()
                    .flat_map(|b| b.content.values_mut())
                {
                    if let Some(schema) = content.schema.as_mut() {
                        constrain(schema, "body", &mut referred);
                    }
                }
                for parameter in op.parameters.iter_mut().flatten() {
                    if parameter.parameter_in == ParameterIn::Query {
                        let name = parameter.name.clone();
                        if let Some(schema) = parameter.schema.as_mut() {
                            constrain(schema, &name, &mut referred);
                        }
                    }
                }
            }
        }
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let mut done = BTreeSet::new();
        while let Some(name) = referred.iter().find(|n| !done.contains(*n)).cloned() {
            done.insert(name.clone());
            if let Some(schema) = components.schemas.get_mut(&name) {
                constrain(schema, "body", &mut referred);
            }
        }
    }
}

fn constrain(schema: &mut RefOr<Schema>, field: &str, referred: &mut BTreeSet<String>) {
    match schema {
        RefOr::Ref(r) => {
            if let Some(name) = r.ref_location.strip_prefix("#/components/schemas/") {
                referred.insert(name.to_owned());
            }
        }
        RefOr::T(Schema::Object(object)) => {
            let is_text = match &object.schema_type {
                SchemaType::Type(Type::String) => true,
                SchemaType::Array(types) => types.contains(&Type::String),
                _ => false,
            };
            if is_text
                && object.pattern.is_none()
                && object.format.is_none()
                && object.enum_values.is_none()
            {
                let free = super::text::allows_line_breaks(field);
                let not_blank = object.min_length.is_some_and(|min| min >= 1);
                object.pattern = Some(super::text::pattern(free, not_blank).to_owned());
            }
            let names: Vec<String> = object.properties.keys().cloned().collect();
            for name in names {
                if let Some(property) = object.properties.get_mut(&name) {
                    constrain(property, &name, referred);
                }
            }
        }
        RefOr::T(Schema::Array(array)) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                constrain(items, field, referred);
            }
        }
        RefOr::T(Schema::OneOf(one)) => one
            .items
            .iter_mut()
            .for_each(|s| constrain(s, field, referred)),
        RefOr::T(Schema::AllOf(all)) => all
            .items
            .iter_mut()
            .for_each(|s| constrain(s, field, referred)),
        RefOr::T(Schema::AnyOf(any)) => any
            .items
            .iter_mut()
            .for_each(|s| constrain(s, field, referred)),
        RefOr::T(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_states_its_problems() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let books = &doc["paths"]["/api/v1/books"]["post"]["responses"];
        for status in ["201", "401", "403", "413", "422", "503"] {
            assert!(
                books.get(status).is_some(),
                "POST /api/v1/books {status}: {books}"
            );
        }
        let name = &doc["components"]["schemas"]["NewProgram"]["properties"]["name"];
        assert!(name["pattern"].as_str().unwrap().contains("x1F"), "{name}");
    }

    #[test]
    fn a_405_names_the_methods_of_the_path() {
        assert_eq!(allowed_methods("/api/v1/books"), Some("GET, POST"));
        assert_eq!(
            allowed_methods("/api/v1/organisations/{id}/accreditation"),
            Some("POST, DELETE")
        );
        assert_eq!(
            allowed_methods("/api/v1/statements/{id}/invoices/{venue}/invoice.xml"),
            Some("GET")
        );
        assert_eq!(
            allowed_methods("/api/v1/organisations/{id}/invoicing"),
            Some("GET, PUT")
        );
        assert_eq!(allowed_methods("/nowhere"), None);
    }
}
