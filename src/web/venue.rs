//! The venue's pages (`/lieu/…`): the scan page and its service worker, the
//! phone's activation as a scanner device, the venue's redemptions (cancel
//! within the window), its devices (revoke) and its signed statements.
//! Every rule is the domain's; these pages only show and call it.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::assets;
use super::errors::PageError;
use super::format;
use super::forms::{self, FormErrors, NoFields, Posted};
use super::invoicing;
use super::layout;
use super::session::Session;
use crate::auth::Role;
use crate::domain::devices::{self, NewDevice};
use crate::domain::redemptions::{self, Redemption, RedemptionFacts};
use crate::domain::{invoices, paris, statements, themes};
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").get(scan_page))
        .service(web::resource("/sw.js").get(service_worker))
        .service(web::resource("/appareils").get(device_list))
        .service(web::resource("/appareils/activer").post(activate))
        .service(web::resource("/appareils/{id}/retirer").post(revoke_device))
        .service(web::resource("/ateliers").get(redemption_list))
        .service(web::resource("/ateliers/{id}/annuler").post(cancel))
        .service(web::resource("/releves").get(statement_list))
        .service(web::resource("/releves/{id}/csv").get(statement_csv))
        .service(web::resource("/releves/{id}/pdf").get(statement_pdf))
        .configure(invoicing::venue_routes);
}

/// What the scan page needs offline: the service worker caches these.
const SCAN_ASSETS: &[&str] = &[
    "app.css",
    "favicon.svg",
    "scan/scan.css",
    "scan/page.js",
    "scan/api.js",
    "scan/camera.js",
    "scan/scanner.js",
    "scan/store.js",
    "scan/verify.js",
    "scan/voucher.js",
    "scan/witness.js",
    "scan/manifest.webmanifest",
    "scan/icon.svg",
    "scan/icon-192.png",
    "scan/icon-512.png",
    "vendor/@noble/ed25519/index.js",
    "vendor/barcode-detector/ponyfill.js",
    "vendor/barcode-detector/zxing-exported.js",
    "vendor/zxing-wasm/zxing_reader.wasm",
];

/// The scan page runs ZXing compiled to WebAssembly where the browser has no
/// QR reader of its own, and links its web app manifest.
const SCAN_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
     manifest-src 'self'; worker-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Workshop lengths offered, in minutes (the domain admits 15 to 480).
const DURATIONS: &[(i32, &str)] = &[
    (30, "30 minutes"),
    (45, "45 minutes"),
    (60, "1 heure"),
    (90, "1 heure 30"),
    (120, "2 heures"),
    (150, "2 heures 30"),
    (180, "3 heures"),
    (240, "4 heures"),
];

/// The venue's stylesheet, on top of the layout's.
fn venue_head() -> Markup {
    html! { link rel="stylesheet" href=(assets::url("scan/scan.css")); }
}

fn venue_page(session: &Session, title: &str, content: Markup) -> HttpResponse {
    layout::ok(venue_markup(session, title, content))
}

fn venue_markup(session: &Session, title: &str, content: Markup) -> Markup {
    layout::page_with_head(Some(session), title, venue_head(), content, &[])
}

/// The page venue staff keep on their phone's home screen.
pub async fn scan_page(session: Session) -> Result<HttpResponse, PageError> {
    let venue = session.require(Role::Venue)?;
    let head = html! {
        (venue_head())
        link rel="manifest" href=(assets::url("scan/manifest.webmanifest"));
        meta name="theme-color" content="#1d4f73";
        link rel="apple-touch-icon" href=(assets::url("scan/icon-192.png"));
    };
    let content = html! {
        div.scan #scan-app data-venue=(venue.organisation.id) data-service-worker="/lieu/sw.js" {
            h1 { "Scanner un coupon" }
            section #activation hidden aria-labelledby="activation-titre" {
                h2 #activation-titre { "Activer ce téléphone" }
                p { "Une fois activé, ce téléphone vérifie les coupons et garde les scans même sans réseau. Vous pourrez le retirer à tout moment dans « Appareils »." }
                p.alert.alert--error #activation-error role="alert" hidden {}
                form.form #activation-form method="post" action="/lieu/appareils/activer" {
                    (forms::csrf_field(&session))
                    (forms::Input::text("name", "Nom de ce téléphone", "")
                        .hint("Par exemple : « Téléphone de l'accueil »")
                        .render(&FormErrors::default()))
                    button.button type="submit" { "Activer ce téléphone" }
                }
            }
            section #scanner hidden {
                p #network.network role="status" { "Connexion…" }
                p.network #log-status role="status" hidden {}
                p.alert.alert--error #log-alarm role="alert" hidden {}
                div.verdict #verdict hidden tabindex="-1" role="status" aria-live="assertive" {
                    p.verdict__title #verdict-title {}
                    p.verdict__detail #verdict-detail {}
                }
                form.form.workshop #workshop hidden {
                    h2 { "L'atelier" }
                    (forms::select("theme", "Thème", &theme_options(), "", &FormErrors::default()))
                    div.field {
                        label.field__label for="held-on" { "Date de l'atelier" }
                        p.field__hint #held-on-aide { "Dans les 7 derniers jours." }
                        input.field__input #held-on name="held_on" type="date" required aria-describedby="held-on-aide";
                    }
                    div.field {
                        label.field__label for="duration" { "Durée" }
                        select.field__input #duration name="duration_minutes" required {
                            @for (minutes, label) in DURATIONS {
                                option value=(minutes) selected[*minutes == 60] { (label) }
                            }
                        }
                    }
                    button.button #record type="submit" { "Enregistrer" }
                    // Set well apart from "Enregistrer": a slip must not lose the workshop.
                    button.button.button--secondary.workshop__skip #skip type="button" { "Abandonner ce coupon" }
                }
                button.button.button--secondary #next type="button" hidden { "Scanner un autre coupon" }
                div.camera {
                    video #video hidden muted playsinline aria-label="Image de la caméra" {}
                    p.alert.alert--warning #camera-error hidden {
                        "La caméra n'a pas pu s'ouvrir : autorisez-la dans le navigateur, ou prenez le coupon en photo."
                    }
                    div.actions {
                        button.button #start-camera type="button" { "Ouvrir la caméra" }
                        button.button.button--secondary #stop-camera type="button" hidden { "Fermer la caméra" }
                        label.button.button--secondary.file-button {
                            "Prendre le QR code en photo"
                            input #photo type="file" accept="image/*" capture="environment";
                        }
                    }
                }
                form.inline-form #typed {
                    div.field {
                        label.field__label for="typed-code" { "Code à taper" }
                        p.field__hint #typed-code-aide { "Sous le QR code : XXXX-XXXX-XXXX-XX. Vérifié en ligne uniquement." }
                        input.field__input #typed-code name="code" type="text" autocomplete="off"
                            autocapitalize="characters" spellcheck="false" aria-describedby="typed-code-aide";
                    }
                    button.button.button--secondary type="submit" { "Vérifier" }
                }
                section.queue #queue hidden aria-labelledby="queue-count" {
                    h2.queue__count #queue-count aria-live="polite" {}
                    ul #queue-list {}
                    button.button.button--secondary.button--small #send-now type="button" { "Envoyer maintenant" }
                }
            }
        }
    };
    let markup = layout::page_with_head(
        Some(&session),
        "Scanner un coupon",
        head,
        content,
        &["scan/page.js"],
    );
    Ok(layout::respond_with_policy(
        StatusCode::OK,
        markup,
        SCAN_CONTENT_SECURITY_POLICY,
    ))
}

/// An instant as the venue's wall clock showed it.
fn when(at: DateTime<Utc>) -> String {
    format::instant(at, paris::DEFAULT_TIME_ZONE)
}

/// `90` → `1 h 30`.
fn duration(minutes: i32) -> String {
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m:02}"),
    }
}

fn theme_options() -> Vec<(String, String)> {
    themes::THEMES
        .iter()
        .map(|t| (t.code.to_owned(), t.label.to_owned()))
        .collect()
}

fn theme_label(code: &str) -> &str {
    themes::THEMES
        .iter()
        .find(|t| t.code == code)
        .map_or(code, |t| t.label)
}

/// The service worker: its version is a digest of every file it caches, so
/// a new build replaces the phone's copies.
pub async fn service_worker() -> Result<HttpResponse, PageError> {
    let mut digest = Sha256::new();
    let urls: Vec<String> = SCAN_ASSETS
        .iter()
        .map(|path| {
            let url = assets::url(path);
            digest.update(url.as_bytes());
            url.split('?').next().unwrap_or_default().to_owned()
        })
        .collect();
    let worker = assets::contents("scan/sw.js").ok_or(PageError::NotFound)?;
    digest.update(&worker);
    let version: String = digest.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let head = format!(
        "const VERSION = {};\nconst ASSETS = {};\n",
        serde_json::Value::from(version),
        serde_json::Value::from(urls)
    );
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/javascript; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body([head.into_bytes(), worker].concat()))
}

#[derive(Debug, Deserialize)]
pub struct DeviceForm {
    name: String,
}

/// Registers the phone as one of the venue's scanner devices; the scan page
/// keeps the token (shown this once) in IndexedDB.
pub async fn activate(
    state: web::Data<AppState>,
    posted: Posted<DeviceForm>,
) -> Result<HttpResponse, PageError> {
    let venue = posted.session.require(Role::Venue)?;
    let mut conn = state.pool.get().await?;
    let new = NewDevice {
        name: posted.form.name,
    };
    let device = devices::register(&mut conn, venue.organisation.id, venue.user.id, new).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(device))
}

pub async fn device_list(
    state: web::Data<AppState>,
    session: Session,
) -> Result<HttpResponse, PageError> {
    let venue = session.require(Role::Venue)?;
    let mut conn = state.pool.get().await?;
    let list = devices::list(&mut conn, Role::Venue, venue.organisation.id, 0, 200).await?;
    Ok(venue_page(
        &session,
        "Appareils",
        html! {
            h1 { "Appareils de scan" }
            p.lead { "Les téléphones et tablettes activés pour scanner les coupons de votre lieu. Retirez celui qui est perdu ou remplacé : il ne pourra plus rien enregistrer." }
            @if list.is_empty() {
                p { "Aucun appareil. Ouvrez « Scanner un coupon » sur le téléphone pour l'activer." }
            } @else {
                ul.cards aria-label="Appareils de scan" {
                    @for device in &list {
                        li.card {
                            h2.card__title { (device.name) }
                            p.muted { "Activé le " (when(device.created_at)) }
                            @match device.revoked_at {
                                Some(at) => p { span.badge.badge--revoked { "Retiré le " (when(at)) } },
                                None => {
                                    p { span.badge.badge--valid { "Actif" } }
                                    form method="post" action={ "/lieu/appareils/" (device.id) "/retirer" } {
                                        (forms::csrf_field(&session))
                                        button.button.button--danger.button--small type="submit" {
                                            "Retirer" span.visually-hidden { " « " (device.name) " »" }
                                        }
                                    }
                                },
                            }
                        }
                    }
                }
            }
        },
    ))
}

pub async fn revoke_device(
    state: web::Data<AppState>,
    posted: Posted<NoFields>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let venue = posted.session.require(Role::Venue)?;
    let mut conn = state.pool.get().await?;
    devices::revoke(&mut conn, *id, Role::Venue, venue.organisation.id).await?;
    state.callers.forget_device(*id);
    Ok(layout::see_other("/lieu/appareils"))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    avant: Option<i64>,
    annule: Option<i64>,
}

const PAGE_SIZE: i64 = 50;

pub async fn redemption_list(
    state: web::Data<AppState>,
    session: Session,
    query: forms::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    session.require(Role::Venue)?;
    redemptions_page(
        &state,
        &session,
        query.avant,
        query.annule,
        None,
        StatusCode::OK,
    )
    .await
}

/// "coupon 4 / 10, code ABCD-EFGH-JKMN-PQ": the coupon as the scan page and
/// the printed book name it, never the internal id.
fn coupon_label(facts: Option<&RedemptionFacts>) -> String {
    match facts {
        Some(f) => format!(
            "coupon {} / {}, code {}",
            f.position, f.book_size, f.typed_code
        ),
        None => "coupon".into(),
    }
}

async fn redemptions_page(
    state: &AppState,
    session: &Session,
    before: Option<i64>,
    cancelled: Option<i64>,
    error: Option<(i64, &str)>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let venue = session.require(Role::Venue)?;
    let mut conn = state.pool.get().await?;
    let rows =
        redemptions::recent_for_venue(&mut conn, venue.organisation.id, before, PAGE_SIZE + 1)
            .await?;
    let more = rows.len() as i64 > PAGE_SIZE;
    let rows = &rows[..rows.len().min(PAGE_SIZE as usize)];
    // The coupon named in a notice may be on no page shown: its facts too.
    let mut named = Vec::new();
    for id in cancelled.into_iter().chain(error.map(|(id, _)| id)) {
        if !rows.iter().any(|r| r.id == id) {
            if let Ok(r) = redemptions::find_for_venue(&mut conn, id, venue.organisation.id).await {
                named.push(r);
            }
        }
    }
    let all: Vec<Redemption> = rows.iter().chain(&named).cloned().collect();
    let facts = redemptions::facts_of(&mut conn, &all).await?;
    let window = Duration::hours(state.config.cancel_window_hours);
    let now = Utc::now();
    let markup = venue_markup(
        session,
        "Ateliers enregistrés",
        html! {
            h1 { "Ateliers enregistrés" }
            p.lead { "Les coupons scannés par votre lieu. Une erreur de saisie s'annule dans les " (window.num_hours()) " heures, tant que l'atelier ne figure sur aucun relevé clos." }
            @if let Some(id) = cancelled {
                div.alert.alert--success role="status" {
                    p { "L'atelier du " (coupon_label(facts.get(&id))) " est annulé : le coupon peut servir de nouveau." }
                }
            }
            @if let Some((id, message)) = error {
                div.alert.alert--error role="alert" tabindex="-1" #erreurs {
                    h2.alert__title { "L'atelier du " (coupon_label(facts.get(&id))) " n'a pas été annulé" }
                    p { (message) }
                }
            }
            @if rows.is_empty() {
                p { "Aucun atelier enregistré pour l'instant." }
            } @else {
                ul.cards aria-label="Ateliers enregistrés, du plus récent au plus ancien" {
                    @for r in rows {
                        @let f = facts.get(&r.id);
                        li.card {
                            h2.card__title { (theme_label(&r.theme)) }
                            @if let Some(f) = f {
                                p { "Coupon " strong { (f.position) " / " (f.book_size) } ", code " span.code { (f.typed_code) } }
                            }
                            p.muted {
                                "Atelier du " (format::date(r.held_on)) ", " (duration(r.duration_minutes))
                                br; "enregistré le " (when(r.redeemed_at)) " · " (format::euros(r.face_value_cents))
                            }
                            (state_cell(session, r, f, window, now))
                        }
                    }
                }
                @if more {
                    @if let Some(last) = rows.last() {
                        p { a href={ "/lieu/ateliers?avant=" (last.id) } { "Ateliers plus anciens" } }
                    }
                }
            }
        },
    );
    Ok(layout::respond(status, markup))
}

/// The redemption's state, and "Annuler" only while it may be cancelled;
/// otherwise why not.
fn state_cell(
    session: &Session,
    r: &Redemption,
    facts: Option<&RedemptionFacts>,
    window: Duration,
    now: DateTime<Utc>,
) -> Markup {
    let until = redemptions::cancellable_until(r.redeemed_at, window);
    let on_statement = facts.and_then(|f| f.statement_number);
    let label = coupon_label(facts);
    html! {
        @if let Some(at) = r.cancelled_at {
            span.badge.badge--revoked { "Annulé le " (when(at)) }
        } @else if r.reversed_at.is_some() {
            span.badge.badge--revoked { "Contesté par le financeur" }
        } @else if let Some(number) = on_statement {
            p { span.badge.badge--valid { "Sur le relevé n° " (number) } }
            p.muted { "Il figure sur un relevé clos : il ne s'annule plus. En cas d'erreur, prévenez le financeur, qui peut le contester." }
        } @else if now > until {
            p { span.badge.badge--valid { "Enregistré" } }
            p.muted { "Le délai d'annulation (" (window.num_hours()) " heures) est passé depuis le " (when(until)) ". En cas d'erreur, prévenez le financeur." }
        } @else {
            p { span.badge.badge--valid { "Enregistré" } " · annulable jusqu'au " (when(until)) }
            details {
                summary { "Annuler" span.visually-hidden { " l'atelier du " (label) } }
                form method="post" action={ "/lieu/ateliers/" (r.id) "/annuler" } {
                    (forms::csrf_field(session))
                    @let field = format!("motif-{}", r.id);
                    div.field {
                        label.field__label for=(field) { "Motif" }
                        input.field__input id=(field) name="reason" type="text" required maxlength="500";
                    }
                    button.button.button--danger.button--small type="submit" {
                        "Annuler cet atelier" span.visually-hidden { " (" (label) ")" }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CancelForm {
    reason: String,
}

pub async fn cancel(
    state: web::Data<AppState>,
    posted: Posted<CancelForm>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let venue = posted.session.require(Role::Venue)?;
    let mut conn = state.pool.get().await?;
    let redemption = redemptions::find_for_venue(&mut conn, *id, venue.organisation.id).await?;
    let window = Duration::hours(state.config.cancel_window_hours);
    match redemptions::cancel(&mut conn, venue, &redemption, &posted.form.reason, window).await {
        Ok(_) => Ok(layout::see_other(&format!("/lieu/ateliers?annule={}", *id))),
        Err(e) => {
            let status = e.kind.status();
            let errors = FormErrors::from_refusal(
                e,
                &[("reason", "reason", "Donnez le motif de l'annulation.")],
            )?;
            let message = errors
                .fields
                .first()
                .map(|(_, m)| m.clone())
                .or(errors.general.clone())
                .unwrap_or_default();
            redemptions_page(
                &state,
                &posted.session,
                None,
                None,
                Some((*id, &message)),
                status,
            )
            .await
        }
    }
}

pub async fn statement_list(
    state: web::Data<AppState>,
    session: Session,
) -> Result<HttpResponse, PageError> {
    let venue = session.require(Role::Venue)?;
    let org = venue.organisation.id;
    let mut conn = state.pool.get().await?;
    let list = statements::list(&mut conn, Role::Venue, org, None).await?;
    let names = invoices::programmes_of_venue(&mut conn, org).await?;
    let available = invoices::available(&mut conn, org).await?;
    let issued = invoices::of_venue(&mut conn, org).await?;
    let missing = invoices::details::missing(&mut conn, org).await?;
    Ok(venue_page(
        &session,
        "Relevés",
        html! {
            h1 { "Relevés signés" }
            p.lead { "Chaque relevé clos par un financeur liste les ateliers qu'il vous paie. Votre extrait est signé : gardez-le, il prouve chaque atelier, quel que soit l'opérateur du service. Sa facture, au format Factur-X, se dépose telle quelle sur Chorus Pro." }
            @if !missing.is_empty() {
                (invoicing::missing_notice(&missing))
            } @else {
                p { a href="/lieu/facturation" { "Vos coordonnées de facturation" } }
            }
            @if list.is_empty() {
                p { "Aucun relevé ne vous concerne pour l'instant." }
            } @else {
                ul.cards aria-label="Relevés signés de votre lieu" {
                    @for s in &list {
                        @let (program, funder) = names.get(&s.id).cloned().unwrap_or_default();
                        li.card {
                            h2.card__title { "Relevé n° " (s.number) }
                            p.muted { "Programme « " (program) " »" br; "Financeur : " (funder) br; "Période du " (format::date(s.period_start)) " au " (format::date(s.period_end)) }
                            p { strong { (s.total_count) " ligne" @if s.total_count > 1 { "s" } " · " (format::euros(s.total_cents)) } }
                            (payment_state(s))
                            ul.downloads {
                                @if missing.is_empty() {
                                    (invoicing::documents(s.id, s.number, available.get(&s.id), &issued))
                                }
                                li { a href={ "/lieu/releves/" (s.id) "/csv" } download {
                                    "Télécharger l'extrait signé (CSV)" span.visually-hidden { " du relevé n° " (s.number) }
                                } }
                                li { a href={ "/lieu/releves/" (s.id) "/pdf" } download {
                                    "Télécharger l'extrait imprimable (PDF)" span.visually-hidden { " du relevé n° " (s.number) }
                                } }
                            }
                            details {
                                summary { "Empreinte et signature" span.visually-hidden { " du relevé n° " (s.number) } }
                                dl.facts {
                                    dt { "SHA-256" } dd.code { (s.sha256) }
                                    dt { "Clé" } dd.code { (s.kid) }
                                    dt { "Signature" } dd.code { (s.signature) }
                                }
                            }
                        }
                    }
                }
                p.muted { "Chaque extrait est signé par le service : le financeur, un comptable ou un contrôleur peut vérifier qu'il n'a pas été modifié, grâce à son empreinte et à sa signature, avec les clés publiées par le service." }
            }
        },
    ))
}

/// Paid (when, by which transfer), awaiting payment, or carried.
fn payment_state(s: &statements::Summary) -> Markup {
    let Some(mine) = s.venues.first() else {
        return html! {};
    };
    html! {
        p {
            @match (&mine.payment, mine.status) {
                (Some(p), _) => {
                    span.badge.badge--valid { "Payé" }
                    " le " (format::date(p.paid_on)) ", virement " span.code { (p.reference) }
                }
                (None, statements::VenueStatus::Due) => span.badge { "En attente de paiement" },
                (None, _) => { span.badge { "Rien à payer" } " : le solde est reporté sur le relevé suivant" },
            }
        }
    }
}

/// The venue's extract: exactly the bytes whose digest is signed.
pub async fn statement_csv(
    state: web::Data<AppState>,
    session: Session,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let (mut conn, scope) = own_extract(&state, &session, *id).await?;
    let bytes = statements::csv_bytes(&mut conn, *id, scope).await?;
    Ok(layout::statement_download(
        *id,
        scope,
        "text/csv; charset=utf-8",
        "csv",
        bytes,
    ))
}

/// The venue's extract, printable, in French.
pub async fn statement_pdf(
    state: web::Data<AppState>,
    session: Session,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let (mut conn, scope) = own_extract(&state, &session, *id).await?;
    let bytes = statements::pdf::render(&mut conn, *id, scope).await?;
    Ok(layout::statement_download(
        *id,
        scope,
        "application/pdf",
        "pdf",
        bytes,
    ))
}

/// A connection and the venue's scope on statement `id` (404 when it has no extract on it).
async fn own_extract(
    state: &AppState,
    session: &Session,
    id: i64,
) -> Result<(crate::db::Connection, Option<i64>), PageError> {
    let venue = session.require(Role::Venue)?;
    let mut conn = state.pool.get().await?;
    let scope = statements::viewer_scope(&mut conn, id, Role::Venue, venue.organisation.id).await?;
    Ok((conn, scope))
}
