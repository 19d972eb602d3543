//! The beneficiary's own page, `GET /carnet/{secret}` (and its short form
//! `/c/{secret}`, what the printed QR code holds): no login, no JavaScript.
//!
//! Made for a small, old phone: one self-contained HTML document (the style
//! inline, the QR codes inline SVG, no image, font or script to fetch), so
//! a saved copy (or the "Enregistrer sur mon téléphone" download, the same
//! bytes as a file) shows everything offline. Large plain French; each
//! remaining coupon's QR code fills the screen's width and its typed code is
//! printed under it. Nothing personal: no reference, no postcode, no name,
//! not the social service; the referrer is never sent, so the secret address
//! does not leak to the sites the page links to.

use std::sync::OnceLock;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::errors::PageError;
use crate::domain::books::VoucherStatus;
use crate::domain::carnet::{self, Lookup, Page, PageVenue, Secret};
use crate::render::typeset::{french_date, french_km, plural};
use crate::render::QrCode;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(format!("{}/{{secret}}", carnet::PAGE_PATH)).get(show))
        .service(web::resource(format!("{}/{{secret}}", carnet::SHORT_PATH)).get(show));
}

/// The whole style of the page, inline (allowed by its hash in the CSP).
const STYLE: &str = "\
html{font-family:Arial,Helvetica,sans-serif;font-size:20px;line-height:1.45;color:#111;background:#fff;-webkit-text-size-adjust:100%}\
body{margin:0;padding:12px}\
main{max-width:36em;margin:0 auto}\
h1{font-size:1.6em;line-height:1.2;color:#0b3d91;margin:.2em 0 .3em}\
h2{font-size:1.25em;line-height:1.25;color:#0b3d91;margin:1.4em 0 .4em;border-bottom:3px solid #0b3d91}\
h3{font-size:1.05em;margin:0 0 .2em}\
p,ul,ol{margin:.4em 0}\
ol{padding-left:1.4em}\
li{margin:.3em 0}\
a{color:#0b3d91}\
.box{border:3px solid #0b3d91;background:#eef3fb;padding:.5em .7em;margin:.6em 0;font-weight:bold}\
.warn{border-color:#a33;background:#fdeeee}\
.coupon{border:3px solid #0b3d91;border-radius:8px;padding:10px;margin:14px 0;text-align:center;page-break-inside:avoid}\
.coupon h3{font-size:1.3em;color:#0b3d91}\
.qr{display:block;width:100%;max-width:400px;margin:6px auto;background:#fff}\
.qr svg{display:block;width:100%;height:auto}\
.code{font-family:'Courier New',Courier,monospace;font-size:1.15em;font-weight:bold;white-space:nowrap}\
.small{font-size:.85em}\
.used li{margin:.5em 0}\
.venue{border-left:6px solid #0b3d91;padding:.2em 0 .2em .6em;margin:.9em 0}\
.venue p{margin:.15em 0}\
.button{display:inline-block;margin:.3em 0;padding:.45em .8em;border:2px solid #0b3d91;border-radius:6px;text-decoration:none;font-weight:bold}\
footer{margin-top:2em;border-top:1px solid #999;padding-top:.5em}\
@media print{.noprint{display:none}}";

fn style_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let digest = Sha256::digest(STYLE.as_bytes());
        format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    })
}

/// Nothing but the inline style: no script, no fetch, no form.
fn policy() -> String {
    format!(
        "default-src 'none'; style-src {}; img-src data:; form-action 'none'; \
         frame-ancestors 'none'; base-uri 'none'",
        style_hash()
    )
}

#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    /// `1`: the same page as a file to keep on the phone.
    enregistrer: Option<String>,
}

pub async fn show(
    state: web::Data<AppState>,
    req: HttpRequest,
    secret: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    // An odd query string is ignored, not refused: this page is for everyone.
    let query: PageQuery = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    // As for logins: the direct peer, or the address a trusted proxy forwarded.
    let client_ip = crate::http::client::address(&req, &state.config.trusted_proxies)
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let mut conn = state.pool.get().await?;
    if !carnet::may_ask(&mut conn, &client_ip).await? {
        return Ok(respond(
            StatusCode::TOO_MANY_REQUESTS,
            message_page(
                "Trop de tentatives",
                "Cette page a été demandée trop souvent depuis votre connexion.",
                "Attendez quelques minutes, puis réessayez.",
            ),
            Some(60 * 10),
        ));
    }
    let lookup = match Secret::parse(&secret) {
        Some(secret) => carnet::lookup(&mut conn, &secret).await?,
        None => Lookup::Unknown,
    };
    carnet::count_request(&mut conn, &client_ip, !matches!(lookup, Lookup::Unknown)).await?;
    let book = match lookup {
        Lookup::Unknown => {
            return Ok(respond(
                StatusCode::NOT_FOUND,
                message_page(
                    "Adresse inconnue",
                    "Cette adresse ne mène à aucun carnet.",
                    "Vérifiez l'adresse écrite sur votre carnet, ou scannez son code.",
                ),
                None,
            ))
        }
        Lookup::Dead => {
            return Ok(respond(
                StatusCode::GONE,
                message_page(
                    "Ce carnet n'est plus valable",
                    "Ce carnet n'est plus valable.",
                    "Si vous avez reçu un nouveau carnet, utilisez-le. Sinon, demandez à la personne qui vous a remis le carnet.",
                ),
                None,
            ))
        }
        Lookup::Live(book) => book,
    };
    let page = carnet::page(&mut conn, &book).await?;
    let mut response = respond(StatusCode::OK, frame("Vos coupons", book_page(&page)), None);
    if query.enregistrer.as_deref() == Some("1") {
        response.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            header::HeaderValue::from_static("attachment; filename=\"pass-numerique.html\""),
        );
    }
    Ok(response)
}

/// The page's headers: kept by the browser (for offline reading) but asked
/// again each time online, never indexed, never framed, no referrer.
fn respond(status: StatusCode, markup: Markup, retry_after: Option<u64>) -> HttpResponse {
    let mut builder = HttpResponse::build(status);
    builder
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "private, no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, policy()))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header(("X-Robots-Tag", "noindex, nofollow"));
    if let Some(secs) = retry_after {
        builder.insert_header((header::RETRY_AFTER, secs.to_string()));
    }
    builder.body(markup.into_string())
}

fn frame(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="fr" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex, nofollow";
                meta name="referrer" content="no-referrer";
                title { (title) " — Pass numérique" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main { (content) }
            }
        }
    }
}

fn message_page(title: &str, lead: &str, next: &str) -> Markup {
    frame(
        title,
        html! {
            h1 { (title) }
            p.box.warn { (lead) }
            p { (next) }
        },
    )
}

fn book_page(page: &Page) -> Markup {
    let remaining: Vec<_> = page
        .coupons
        .iter()
        .filter(|c| c.status == VoucherStatus::Valid)
        .collect();
    let used: Vec<_> = page
        .coupons
        .iter()
        .filter(|c| c.status == VoucherStatus::Redeemed)
        .collect();
    let expired = page.expires_on < page.today;
    let left = remaining.len();
    html! {
        h1 { "Votre pass numérique" }
        p { (page.program_name) }
        @if expired {
            p.box.warn { "Ce carnet a expiré le " (french_date(page.expires_on)) "." }
        } @else {
            p.box { "Valable jusqu’au " (french_date(page.expires_on)) " inclus." }
            p {
                @if left == 0 {
                    "Tous vos ateliers ont été utilisés."
                } @else {
                    "Il vous reste " strong { (left) " " (plural(left, "atelier gratuit", "ateliers gratuits")) }
                    " sur " (page.book_size) "."
                }
            }
        }
        @if !expired && left > 0 {
            h2 { "Comment faire ?" }
            ol {
                li { "Choisissez un lieu dans la liste plus bas." }
                li { "Appelez ce lieu ou allez-y pour prendre rendez-vous." }
                li { "À l’atelier, montrez un coupon sur votre téléphone. On le scanne sur l’écran." }
            }
            p { strong { "Un coupon = un atelier. C’est gratuit." } }
            h2 { "Vos coupons" }
            @for coupon in &remaining {
                @let label = format!("Coupon de l’atelier {} sur {}", coupon.position, page.book_size);
                section.coupon aria-label=(label) {
                    h3 { "Atelier " (coupon.position) " / " (page.book_size) }
                    div.qr { (qr_svg(&coupon.code, &label)) }
                    p.small { "Si le scan ne marche pas, le code à saisir :" }
                    p.code { (coupon.typed_code) }
                }
            }
        }
        @if !used.is_empty() {
            h2 { "Ateliers déjà faits" }
            ul.used {
                @for coupon in &used {
                    li {
                        "Atelier " (coupon.position) " / " (page.book_size) " : utilisé"
                        @if let Some(at) = coupon.used_at {
                            " le " (french_date(at.with_timezone(&page.time_zone).date_naive()))
                        }
                        @if let Some(venue) = &coupon.used_at_venue {
                            " (" (venue) ")"
                        }
                        "."
                    }
                }
            }
        }
        h2 { "Les lieux qui prennent vos coupons" }
        @if page.venues.is_empty() {
            p { "Demandez à la personne qui vous a remis ce carnet où aller." }
        }
        @for venue in &page.venues { (venue_block(venue)) }
        @if !page.other_places.is_empty() {
            h2 { "D’autres lieux qui peuvent vous aider" }
            p.small { "Ces lieux ne prennent pas les coupons, mais ils aident aussi avec le numérique." }
            @for venue in &page.other_places { (venue_block(venue)) }
        }
        h2 { "Garder cette page" }
        p { "Cette page marche aussi sans internet si vous l’enregistrez sur votre téléphone." }
        p.noprint { a.button href="?enregistrer=1" download="pass-numerique.html" { "Enregistrer sur mon téléphone" } }
        p.small { "Ne donnez pas l’adresse de cette page : vos coupons sont dessus." }
        footer.small {
            p { "Un problème, un carnet perdu ? Demandez à la personne qui vous a remis le carnet." }
        }
    }
}

fn qr_svg(code: &str, label: &str) -> Markup {
    match QrCode::new(code) {
        Ok(qr) => PreEscaped(qr.to_svg(Some(label))),
        Err(_) => html! {},
    }
}

fn venue_block(venue: &PageVenue) -> Markup {
    let distance = if venue.home {
        Some("dans votre commune".to_owned())
    } else {
        venue.distance_km.and_then(french_km)
    };
    let phone_link = venue.phone.as_deref().map(|p| {
        let digits: String = p
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect();
        (format!("tel:{digits}"), display_phone(p))
    });
    let directions = format!(
        "https://www.openstreetmap.org/directions?route=%3B{:.5}%2C{:.5}#map=16/{:.5}/{:.5}",
        venue.latitude, venue.longitude, venue.latitude, venue.longitude
    );
    html! {
        div.venue {
            h3 { (venue.name) }
            p { (venue.address) ", " (venue.postcode) " " (venue.commune)
                @if let Some(d) = &distance { " — " (d) } }
            @if let Some((href, shown)) = &phone_link {
                p { "Téléphone : " a href=(href) { (shown) } }
            }
            @if let Some(hours) = &venue.opening_hours {
                @let lines = opening_hours_fr(hours);
                p { "Horaires : " }
                ul.small { @for line in &lines { li { (line) } } }
            }
            p { a href=(directions) rel="noreferrer noopener" { "Voir le chemin" } }
        }
    }
}

/// `+33388001122` or `0388001122` → `03 88 00 11 22`; anything else as given.
pub fn display_phone(phone: &str) -> String {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    let national = if phone.trim_start().starts_with("+33") && digits.len() == 11 {
        format!("0{}", &digits[2..])
    } else {
        digits.clone()
    };
    if national.len() == 10 && national.starts_with('0') {
        national
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        phone.trim().to_owned()
    }
}

/// OpenStreetMap `opening_hours` (the national standard's format) in plain
/// French, one line per rule: `Mo-Fr 09:00-12:00,14:00-18:30; Sa 08:30-12:00`
/// → `du lundi au vendredi : 9 h à 12 h, 14 h à 18 h 30`, `samedi : 8 h 30 à 12 h`.
/// A rule it does not understand is shown as written.
pub fn opening_hours_fr(hours: &str) -> Vec<String> {
    hours
        .split(';')
        .map(str::trim)
        .filter(|rule| !rule.is_empty())
        .map(|rule| rule_fr(rule).unwrap_or_else(|| rule.to_owned()))
        .collect()
}

fn day_fr(day: &str) -> Option<&'static str> {
    Some(match day {
        "Mo" => "lundi",
        "Tu" => "mardi",
        "We" => "mercredi",
        "Th" => "jeudi",
        "Fr" => "vendredi",
        "Sa" => "samedi",
        "Su" => "dimanche",
        "PH" => "jours fériés",
        _ => return None,
    })
}

fn time_fr(time: &str) -> Option<String> {
    let (h, m) = time.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 24 || m > 59 {
        return None;
    }
    Some(if m == 0 {
        format!("{h} h")
    } else {
        format!("{h} h {m:02}")
    })
}

fn rule_fr(rule: &str) -> Option<String> {
    let (days, times) = match rule.split_once(' ') {
        Some((d, t)) if d.chars().next().is_some_and(|c| c.is_ascii_uppercase()) => {
            (Some(d), t.trim())
        }
        _ => (None, rule),
    };
    let days = match days {
        None => "tous les jours".to_owned(),
        Some(days) => days
            .split(',')
            .map(|part| match part.split_once('-') {
                Some((a, b)) => Some(format!("du {} au {}", day_fr(a)?, day_fr(b)?)),
                None => day_fr(part).map(str::to_owned),
            })
            .collect::<Option<Vec<_>>>()?
            .join(", "),
    };
    let times = if times == "off" || times == "closed" {
        "fermé".to_owned()
    } else {
        times
            .split(',')
            .map(|span| {
                let (a, b) = span.trim().split_once('-')?;
                Some(format!("{} à {}", time_fr(a)?, time_fr(b)?))
            })
            .collect::<Option<Vec<_>>>()?
            .join(", ")
    };
    Some(format!("{days} : {times}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_hours_read_in_french() {
        assert_eq!(
            opening_hours_fr("Mo-Fr 09:00-12:00,14:00-18:30; Sa 08:30-12:00"),
            vec![
                "du lundi au vendredi : 9 h à 12 h, 14 h à 18 h 30",
                "samedi : 8 h 30 à 12 h"
            ]
        );
        assert_eq!(
            opening_hours_fr("Tu,Th 14:00-17:00; PH off"),
            vec!["mardi, jeudi : 14 h à 17 h", "jours fériés : fermé"]
        );
        assert_eq!(
            opening_hours_fr("10:00-18:00"),
            vec!["tous les jours : 10 h à 18 h"]
        );
        // Not understood: shown as written.
        assert_eq!(
            opening_hours_fr("Mo-Fr 09:00-12:00 \"sur rendez-vous\""),
            vec!["Mo-Fr 09:00-12:00 \"sur rendez-vous\""]
        );
        assert!(opening_hours_fr(" ; ").is_empty());
    }

    #[test]
    fn phones_read_the_french_way() {
        assert_eq!(display_phone("+33388001122"), "03 88 00 11 22");
        assert_eq!(display_phone("0388001122"), "03 88 00 11 22");
        assert_eq!(display_phone("03 88 00 11 22"), "03 88 00 11 22");
        assert_eq!(display_phone("+262262001122"), "+262262001122");
    }

    #[test]
    fn the_policy_admits_exactly_the_inline_style() {
        let policy = policy();
        assert!(policy.contains("style-src 'sha256-"), "{policy}");
        assert!(!policy.contains("script-src"), "{policy}");
        assert!(policy.starts_with("default-src 'none'"), "{policy}");
    }
}
