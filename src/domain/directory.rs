//! The national directory of digital-mediation venues: importing the
//! national standard's file ("standard des lieux de médiation numérique",
//! LaMednum/standard-mediation-num, version 0.1 as published on
//! schema.data.gouv.fr) as *listed* venue organisations.
//!
//! Each row is checked against the schema's rules (required fields, the
//! patterns of `code_postal`, `code_insee`, `telephone`, `date_maj`, the
//! closed lists of `services`, `publics_accueillis`, `conditions_acces`,
//! `labels_nationaux`, `modalites_accompagnement`) and against ours (a real
//! commune having that postcode, coordinates in France, a valid SIRET or RNA
//! number as `pivot`). A bad row is reported with its line and its reason and
//! changes nothing; the good ones are created or updated, keyed by the row's
//! `id` (the national identifier), all in one transaction, so importing the
//! same file twice changes nothing the second time.
//!
//! A listed venue is a venue organisation with a `national_id`, never
//! accredited by the import: books and the beneficiary's page show it among
//! "other places that can help". Once a venue completed its own details
//! (`venue_details.self_edited_at`), imports leave its hours, accessibility
//! and phone alone.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::sql_types::{Array, BigInt, Bool, Date, Double, Integer, Jsonb, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::geo::{validate_siret, Communes};
use crate::http::problem::ApiError;

/// The `services` the schema admits.
pub const SERVICES: [&str; 15] = [
    "Devenir autonome dans les démarches administratives",
    "Réaliser des démarches administratives avec un accompagnement",
    "Prendre en main un smartphone ou une tablette",
    "Prendre en main un ordinateur",
    "Utiliser le numérique au quotidien",
    "Approfondir ma culture numérique",
    "Favoriser mon insertion professionnelle",
    "Accéder à une connexion internet",
    "Accéder à du matériel",
    "S'équiper en matériel informatique",
    "Créer et développer mon entreprise",
    "Créer avec le numérique",
    "Accompagner les démarches de santé",
    "Promouvoir la citoyenneté numérique",
    "Soutenir la parentalité et l'éducation avec le numérique",
];

const PUBLICS: [&str; 11] = [
    "Seniors (+ 65 ans)",
    "Familles/enfants",
    "Adultes",
    "Jeunes (16-26 ans)",
    "Public langues étrangères",
    "Déficience visuelle",
    "Surdité",
    "Handicaps psychiques : troubles psychiatriques donnant lieu à des atteintes comportementales",
    "Handicaps mentaux : déficiences limitant les activités d'une personne",
    "Uniquement femmes",
    "Personnes en situation d'illettrisme",
];

/// The value of `conditions_acces` that marks venues taking the pass.
pub const TAKES_PASS: &str =
    "Accepte le Pass numérique : Il est possible d'utiliser un Pass numérique pour accéder au lieu";

const CONDITIONS: [&str; 5] = [
    "Gratuit : Je peux accéder gratuitement au lieu et à ses services",
    "Gratuit sous condition : La gratuité est conditionnée à des critères (situation familiale, convention avec un organisme social...)",
    "Payant : L'accès au lieu et/ou à ses services est payant",
    "Adhésion : L'accès au lieu et/ou à ses services nécessite d'y adhérer",
    TAKES_PASS,
];

const LABELS: [&str; 11] = [
    "France Services",
    "CNFS",
    "APTIC",
    "Aidants Connect",
    "Fabriques de Territoire",
    "Grandes écoles du numérique",
    "Point relais CAF",
    "Point numérique CAF",
    "Relais pôle emploi",
    "French Tech",
    "Campus connecté",
];

const MODALITES: [&str; 4] = [
    "Seul : j'ai accès à du matériel et une connexion",
    "Avec de l'aide : je suis accompagné seul dans l'usage du numérique",
    "Dans un atelier : j'apprends collectivement à utiliser le numérique",
    "A ma place : une personne habilitée fait les démarches à ma place",
];

/// Dialling codes the schema's `telephone` pattern admits.
const DIALLING_CODES: [&str; 10] = [
    "+33", "+590", "+594", "+262", "+596", "+269", "+687", "+689", "+508", "+681",
];

/// Why a file cannot be read at all (as opposed to one bad row).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("le fichier n'est pas en UTF-8 (octet {0})")]
    NotUtf8(usize),
    #[error("CSV illisible, ligne {line} : {reason}")]
    Csv { line: usize, reason: String },
    #[error("JSON illisible : {0}")]
    Json(String),
    #[error("colonne obligatoire absente de l'en-tête : {0}")]
    MissingColumn(&'static str),
    #[error("le fichier ne contient aucun lieu")]
    Empty,
}

/// One row of the file: its line (CSV: where the record starts; JSON: the
/// object's position, from 1) and its cells by column name.
#[derive(Debug, Clone)]
pub struct RawRow {
    pub line: usize,
    pub cells: HashMap<String, String>,
}

/// Reads the national file, CSV (comma-separated, RFC 4180 quoting, UTF-8
/// with or without BOM) or JSON (an array of objects with the same names).
pub fn read_file(bytes: &[u8]) -> Result<Vec<RawRow>, FileError> {
    let text = std::str::from_utf8(bytes).map_err(|e| FileError::NotUtf8(e.valid_up_to()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rows = if text.trim_start().starts_with('[') {
        read_json(text)?
    } else {
        read_csv(text)?
    };
    if rows.is_empty() {
        return Err(FileError::Empty);
    }
    for required in ["id", "nom"] {
        if !rows[0].cells.contains_key(required) {
            return Err(FileError::MissingColumn(required));
        }
    }
    Ok(rows)
}

fn read_json(text: &str) -> Result<Vec<RawRow>, FileError> {
    let values: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(text).map_err(|e| FileError::Json(e.to_string()))?;
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(i, object)| RawRow {
            line: i + 1,
            cells: object
                .into_iter()
                .filter_map(|(k, v)| {
                    let cell = match v {
                        serde_json::Value::Null => return None,
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Array(items) => items
                            .iter()
                            .map(|i| match i {
                                serde_json::Value::String(s) => s.clone(),
                                other => other.to_string(),
                            })
                            .collect::<Vec<_>>()
                            .join(";"),
                        other => other.to_string(),
                    };
                    Some((k.trim().to_lowercase(), cell))
                })
                .collect(),
        })
        .collect())
}

/// RFC 4180 records: `(line where it starts, cells)`.
fn csv_records(text: &str) -> Result<Vec<(usize, Vec<String>)>, FileError> {
    let mut records = Vec::new();
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut line = 1;
    let mut start = 1;
    let mut chars = text.chars().peekable();
    let mut at_cell_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    cell.push('\n');
                }
                other => cell.push(other),
            }
            continue;
        }
        match c {
            '"' if at_cell_start => {
                quoted = true;
                at_cell_start = false;
            }
            ',' => {
                cells.push(std::mem::take(&mut cell));
                at_cell_start = true;
            }
            '\r' => {}
            '\n' => {
                cells.push(std::mem::take(&mut cell));
                if !(cells.len() == 1 && cells[0].is_empty()) {
                    records.push((start, std::mem::take(&mut cells)));
                }
                cells.clear();
                line += 1;
                start = line;
                at_cell_start = true;
            }
            other => {
                cell.push(other);
                at_cell_start = false;
            }
        }
    }
    if quoted {
        return Err(FileError::Csv {
            line: start,
            reason: "guillemet ouvert jamais fermé".into(),
        });
    }
    if !cell.is_empty() || !cells.is_empty() {
        cells.push(cell);
        records.push((start, cells));
    }
    Ok(records)
}

fn read_csv(text: &str) -> Result<Vec<RawRow>, FileError> {
    let mut records = csv_records(text)?.into_iter();
    let Some((_, header)) = records.next() else {
        return Ok(Vec::new());
    };
    let header: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
    records
        .map(|(line, cells)| {
            if cells.len() != header.len() {
                return Ok(RawRow {
                    line,
                    // Reported as a bad row, not a bad file.
                    cells: HashMap::from([(
                        "#width".to_owned(),
                        format!("{} colonnes au lieu de {}", cells.len(), header.len()),
                    )]),
                });
            }
            Ok(RawRow {
                line,
                cells: header
                    .iter()
                    .cloned()
                    .zip(cells)
                    .filter(|(_, v)| !v.trim().is_empty())
                    .collect(),
            })
        })
        .collect()
}

/// A checked row, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub national_id: String,
    pub siret: Option<String>,
    pub name: String,
    pub address: String,
    pub postcode: String,
    pub commune_code: String,
    pub departement: String,
    pub latitude: f64,
    pub longitude: f64,
    pub phone: Option<String>,
    pub opening_hours: Option<String>,
    pub services: Vec<String>,
    pub accessibility: Option<String>,
    pub website: Option<String>,
    pub takes_pass: bool,
    pub updated_on: NaiveDate,
}

/// A list cell: values separated by `;` (the schema) or `|` (later versions).
fn list(cell: &str) -> Vec<String> {
    cell.split([';', '|'])
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every value of a list cell in `allowed` (compared with straight
/// apostrophes, as files mix ’ and ').
fn closed_list(field: &str, cell: &str, allowed: &[&str]) -> Result<Vec<String>, String> {
    let values = list(cell);
    for v in &values {
        let v = v.replace('’', "'");
        if !allowed.iter().any(|a| a.replace('’', "'") == v) {
            return Err(format!(
                "{field} : « {v} » n'est pas une valeur du standard"
            ));
        }
    }
    Ok(values)
}

/// Letters only, upper case, no accents: "Saint-Étienne" ~ "SAINT ETIENNE".
fn fold(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'à' | 'â' | 'ä' | 'À' | 'Â' | 'Ä' => 'A',
            'é' | 'è' | 'ê' | 'ë' | 'É' | 'È' | 'Ê' | 'Ë' => 'E',
            'î' | 'ï' | 'Î' | 'Ï' => 'I',
            'ô' | 'ö' | 'Ô' | 'Ö' => 'O',
            'ù' | 'û' | 'ü' | 'Ù' | 'Û' | 'Ü' => 'U',
            'ç' | 'Ç' => 'C',
            'ÿ' | 'Ÿ' => 'Y',
            c if c.is_alphanumeric() => c.to_ascii_uppercase(),
            _ => ' ',
        })
        .collect::<String>()
        .split_whitespace()
        .map(|w| if w == "ST" { "SAINT" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks one row; the reason, in French, when it is refused.
pub fn check_row(row: &RawRow) -> Result<Listed, String> {
    if let Some(width) = row.cells.get("#width") {
        return Err(format!("ligne mal formée : {width}"));
    }
    let get = |name: &str| {
        row.cells
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let required =
        |name: &str| get(name).ok_or_else(|| format!("{name} : valeur obligatoire absente"));

    let national_id = required("id")?;
    if national_id.chars().count() > 200 {
        return Err("id : plus de 200 caractères".into());
    }
    let pivot = required("pivot")?;
    let siret = if pivot.len() == 10
        && pivot.starts_with(['W', 'w'])
        && pivot[1..].chars().all(|c| c.is_ascii_digit())
    {
        None // an RNA number: an association without SIRET
    } else {
        validate_siret(pivot)
            .map_err(|e| format!("pivot : ni un SIRET valide ni un numéro RNA ({e})"))?;
        Some(pivot.to_owned())
    };
    let name = required("nom")?;
    if name.chars().count() > 200 {
        return Err("nom : plus de 200 caractères".into());
    }
    let commune_name = required("commune")?;
    let postcode = required("code_postal")?;
    if postcode.len() != 5 || !postcode.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("code_postal : « {postcode} » n'a pas 5 chiffres"));
    }
    let communes = Communes::shared();
    let commune = match get("code_insee") {
        Some(code) => {
            let valid = code.len() == 5
                && (code[..2].chars().all(|c| c.is_ascii_digit()) && !code.starts_with("20")
                    || code.starts_with("2A")
                    || code.starts_with("2B"))
                && code[2..].chars().all(|c| c.is_ascii_digit());
            if !valid {
                return Err(format!(
                    "code_insee : « {code} » n'est pas un code officiel géographique"
                ));
            }
            communes
                .commune_with_postcode(code, postcode)
                .map_err(|_| {
                    format!("code_insee : {code} n'est pas une commune du code postal {postcode}")
                })?
        }
        None => {
            let wanted = fold(commune_name);
            let mut found = communes
                .communes_for_postcode(postcode)
                .filter(|c| fold(c.name()) == wanted);
            match (found.next(), found.next()) {
                (Some(c), None) => c,
                _ => {
                    return Err(format!(
                        "commune : « {commune_name} » introuvable au code postal {postcode} (donnez code_insee)"
                    ))
                }
            }
        }
    };
    let street = required("adresse")?;
    let address = match get("complement_adresse") {
        Some(more) => format!("{street}, {more}"),
        None => street.to_owned(),
    };
    let coordinate = |name: &str, range: std::ops::RangeInclusive<f64>| -> Result<f64, String> {
        let value = get(name).ok_or_else(|| {
            format!("{name} : absente (les coordonnées servent à trouver les lieux proches)")
        })?;
        let number: f64 = value
            .replace(',', ".")
            .parse()
            .map_err(|_| format!("{name} : « {value} » n'est pas un nombre"))?;
        if !number.is_finite() || !range.contains(&number) {
            return Err(format!("{name} : {value} est hors de la France"));
        }
        Ok(number)
    };
    // Metropolitan France and the overseas départements and regions.
    let latitude = coordinate("latitude", -22.0..=52.0)?;
    let longitude = coordinate("longitude", -64.0..=56.0)?;
    let phone = match get("telephone") {
        Some(phone) => {
            let ok = DIALLING_CODES.iter().any(|code| {
                phone.strip_prefix(code).is_some_and(|rest| {
                    (6..=9).contains(&rest.len()) && rest.chars().all(|c| c.is_ascii_digit())
                })
            });
            if !ok {
                return Err(format!(
                    "telephone : « {phone} » n'est pas au format international (+33 puis 9 chiffres, sans espace)"
                ));
            }
            Some(phone.to_owned())
        }
        None => None,
    };
    let updated_on = required("date_maj")?;
    let updated_on = NaiveDate::parse_from_str(updated_on, "%Y-%m-%d")
        .map_err(|_| format!("date_maj : « {updated_on} » n'est pas une date AAAA-MM-JJ"))?;
    let services = closed_list("services", required("services")?, &SERVICES)?;
    if services.is_empty() {
        return Err("services : valeur obligatoire absente".into());
    }
    if let Some(cell) = get("publics_accueillis") {
        closed_list("publics_accueillis", cell, &PUBLICS)?;
    }
    let conditions = match get("conditions_acces") {
        Some(cell) => closed_list("conditions_acces", cell, &CONDITIONS)?,
        None => Vec::new(),
    };
    if let Some(cell) = get("labels_nationaux") {
        closed_list("labels_nationaux", cell, &LABELS)?;
    }
    if let Some(cell) = get("modalites_accompagnement") {
        closed_list("modalites_accompagnement", cell, &MODALITES)?;
    }
    let limited = |name: &str| -> Result<Option<String>, String> {
        match get(name) {
            Some(v) if v.chars().count() > 500 => Err(format!("{name} : plus de 500 caractères")),
            other => Ok(other.map(str::to_owned)),
        }
    };
    if get("presentation_resume").is_some_and(|v| v.chars().count() > 500) {
        return Err("presentation_resume : plus de 500 caractères".into());
    }
    Ok(Listed {
        national_id: national_id.to_owned(),
        siret,
        name: name.to_owned(),
        address,
        postcode: postcode.to_owned(),
        commune_code: commune.code().to_owned(),
        departement: commune.departement().as_str().to_owned(),
        latitude,
        longitude,
        phone,
        opening_hours: limited("horaires")?,
        services,
        accessibility: limited("accessibilite")?,
        website: limited("site_web")?,
        takes_pass: conditions.iter().any(|c| c.replace('’', "'") == TAKES_PASS),
        updated_on,
    })
}

/// A refused row.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Rejection {
    pub line: usize,
    /// The row's `id`, when it has one.
    pub id: Option<String>,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub rows_read: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub rejections: Vec<Rejection>,
}

/// Checks every row: the good ones, and the reasons of the bad ones. A
/// second row with an `id` already seen is refused.
pub fn check_rows(rows: &[RawRow]) -> (Vec<Listed>, Vec<Rejection>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for row in rows {
        let id = row.cells.get("id").map(|v| v.trim().to_owned());
        match check_row(row) {
            Ok(listed) => {
                if let Some(first) = seen.get(&listed.national_id) {
                    bad.push(Rejection {
                        line: row.line,
                        id,
                        reason: format!("id : déjà vu ligne {first}"),
                    });
                } else {
                    seen.insert(listed.national_id.clone(), row.line);
                    good.push(listed);
                }
            }
            Err(reason) => bad.push(Rejection {
                line: row.line,
                id,
                reason,
            }),
        }
    }
    (good, bad)
}

/// Rows written per statement.
const CHUNK: usize = 1000;

/// Imports a file: checks it, then creates or updates its venues and
/// records the report, in one transaction.
pub async fn import(
    conn: &mut AsyncPgConnection,
    file_name: &str,
    bytes: &[u8],
) -> Result<Result<Report, FileError>, ApiError> {
    let started_at = Utc::now();
    let rows = match read_file(bytes) {
        Ok(rows) => rows,
        Err(e) => return Ok(Err(e)),
    };
    let (good, rejections) = check_rows(&rows);
    let digest: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut report = Report {
        rows_read: rows.len(),
        rejections,
        ..Report::default()
    };
    let report = conn
        .transaction::<_, ApiError, _>(async |conn| {
            for chunk in good.chunks(CHUNK) {
                let (created, updated) = upsert(conn, chunk).await?;
                report.created += created;
                report.updated += updated;
                report.unchanged += chunk.len() - created - updated;
            }
            record(conn, file_name, &digest, started_at, &report).await?;
            Ok(report)
        })
        .await?;
    Ok(Ok(report))
}

/// Creates or updates one chunk; returns (created, updated).
async fn upsert(conn: &mut AsyncPgConnection, rows: &[Listed]) -> Result<(usize, usize), ApiError> {
    #[derive(diesel::QueryableByName)]
    struct Changed {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Bool)]
        inserted: bool,
    }
    let col = |f: fn(&Listed) -> String| rows.iter().map(f).collect::<Vec<_>>();
    let opt = |f: fn(&Listed) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
    let organisations: Vec<Changed> = diesel::sql_query(
        "INSERT INTO organisations AS o (kind, national_id, siret, name, address, postcode, commune_code,
                                        departement, latitude, longitude, phone)
         SELECT 'venue', t.* FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                                         $7::text[], $8::float8[], $9::float8[], $10::text[]) AS t
         ON CONFLICT (national_id) DO UPDATE SET
            siret = EXCLUDED.siret, name = EXCLUDED.name, address = EXCLUDED.address,
            postcode = EXCLUDED.postcode, commune_code = EXCLUDED.commune_code,
            departement = EXCLUDED.departement, latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude,
            phone = CASE WHEN EXISTS (SELECT 1 FROM venue_details d WHERE d.organisation_id = o.id
                                       AND d.self_edited_at IS NOT NULL)
                         THEN o.phone ELSE EXCLUDED.phone END
         WHERE (o.siret, o.name, o.address, o.postcode, o.commune_code, o.departement, o.latitude, o.longitude)
               IS DISTINCT FROM (EXCLUDED.siret, EXCLUDED.name, EXCLUDED.address, EXCLUDED.postcode,
                                 EXCLUDED.commune_code, EXCLUDED.departement, EXCLUDED.latitude, EXCLUDED.longitude)
            OR (o.phone IS DISTINCT FROM EXCLUDED.phone AND NOT EXISTS (
                   SELECT 1 FROM venue_details d WHERE d.organisation_id = o.id AND d.self_edited_at IS NOT NULL))
         RETURNING o.id, (xmax = 0) AS inserted",
    )
    .bind::<Array<Text>, _>(col(|r| r.national_id.clone()))
    .bind::<Array<Nullable<Text>>, _>(opt(|r| r.siret.clone()))
    .bind::<Array<Text>, _>(col(|r| r.name.clone()))
    .bind::<Array<Text>, _>(col(|r| r.address.clone()))
    .bind::<Array<Text>, _>(col(|r| r.postcode.clone()))
    .bind::<Array<Text>, _>(col(|r| r.commune_code.clone()))
    .bind::<Array<Text>, _>(col(|r| r.departement.clone()))
    .bind::<Array<Double>, _>(rows.iter().map(|r| r.latitude).collect::<Vec<_>>())
    .bind::<Array<Double>, _>(rows.iter().map(|r| r.longitude).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(opt(|r| r.phone.clone()))
    .load(conn)
    .await?;
    let services: Vec<String> = rows
        .iter()
        .map(|r| serde_json::to_string(&r.services).unwrap_or_else(|_| "[]".into()))
        .collect();
    let details: Vec<Changed> = diesel::sql_query(
        "WITH t AS (
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::date[])
                AS t (national_id, opening_hours, services, accessibility, website, takes_pass, updated_on))
         INSERT INTO venue_details AS d (organisation_id, opening_hours, services, accessibility, website,
                                         takes_pass, national_updated_on, imported_at)
         SELECT o.id, t.opening_hours, ARRAY(SELECT jsonb_array_elements_text(t.services::jsonb)),
                t.accessibility, t.website, t.takes_pass, t.updated_on, now()
           FROM t JOIN organisations o ON o.national_id = t.national_id
         ON CONFLICT (organisation_id) DO UPDATE SET
            opening_hours = CASE WHEN d.self_edited_at IS NULL THEN EXCLUDED.opening_hours ELSE d.opening_hours END,
            accessibility = CASE WHEN d.self_edited_at IS NULL THEN EXCLUDED.accessibility ELSE d.accessibility END,
            services = EXCLUDED.services, website = EXCLUDED.website, takes_pass = EXCLUDED.takes_pass,
            national_updated_on = EXCLUDED.national_updated_on, imported_at = EXCLUDED.imported_at
         WHERE (d.services, d.website, d.takes_pass, d.national_updated_on)
               IS DISTINCT FROM (EXCLUDED.services, EXCLUDED.website, EXCLUDED.takes_pass, EXCLUDED.national_updated_on)
            OR (d.self_edited_at IS NULL AND (d.opening_hours, d.accessibility)
                IS DISTINCT FROM (EXCLUDED.opening_hours, EXCLUDED.accessibility))
         RETURNING d.organisation_id AS id, (xmax = 0) AS inserted",
    )
    .bind::<Array<Text>, _>(col(|r| r.national_id.clone()))
    .bind::<Array<Nullable<Text>>, _>(opt(|r| r.opening_hours.clone()))
    .bind::<Array<Text>, _>(services)
    .bind::<Array<Nullable<Text>>, _>(opt(|r| r.accessibility.clone()))
    .bind::<Array<Nullable<Text>>, _>(opt(|r| r.website.clone()))
    .bind::<Array<Bool>, _>(rows.iter().map(|r| r.takes_pass).collect::<Vec<_>>())
    .bind::<Array<Date>, _>(rows.iter().map(|r| r.updated_on).collect::<Vec<_>>())
    .load(conn)
    .await?;
    let created: std::collections::HashSet<i64> = organisations
        .iter()
        .filter(|c| c.inserted)
        .map(|c| c.id)
        .collect();
    let mut updated: std::collections::HashSet<i64> = organisations
        .iter()
        .filter(|c| !c.inserted)
        .map(|c| c.id)
        .collect();
    // A venue whose details are new (a hand-made row had none) or changed.
    updated.extend(
        details
            .iter()
            .map(|c| c.id)
            .filter(|id| !created.contains(id)),
    );
    Ok((created.len(), updated.len()))
}

async fn record(
    conn: &mut AsyncPgConnection,
    file_name: &str,
    digest: &str,
    started_at: DateTime<Utc>,
    report: &Report,
) -> Result<(), ApiError> {
    let shown: Vec<&Rejection> = report.rejections.iter().take(1000).collect();
    let rejections = serde_json::to_value(&shown).unwrap_or_default();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    diesel::sql_query(
        "INSERT INTO venue_imports (file_name, file_sha256, started_at, rows_read, created, updated,
                                    unchanged, rejected, rejections)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind::<Text, _>(file_name)
    .bind::<Text, _>(digest)
    .bind::<diesel::sql_types::Timestamptz, _>(started_at)
    .bind::<Integer, _>(count(report.rows_read))
    .bind::<Integer, _>(count(report.created))
    .bind::<Integer, _>(count(report.updated))
    .bind::<Integer, _>(count(report.unchanged))
    .bind::<Integer, _>(count(report.rejections.len()))
    .bind::<Jsonb, _>(rejections)
    .execute(conn)
    .await?;
    Ok(())
}

/// A past import, for the operator.
#[derive(Debug, Clone, diesel::QueryableByName, Serialize)]
pub struct ImportRun {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub file_name: String,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub finished_at: DateTime<Utc>,
    #[diesel(sql_type = Integer)]
    pub rows_read: i32,
    #[diesel(sql_type = Integer)]
    pub created: i32,
    #[diesel(sql_type = Integer)]
    pub updated: i32,
    #[diesel(sql_type = Integer)]
    pub unchanged: i32,
    #[diesel(sql_type = Integer)]
    pub rejected: i32,
    #[diesel(sql_type = Jsonb)]
    pub rejections: serde_json::Value,
}

/// The latest imports, newest first.
pub async fn recent_imports(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> Result<Vec<ImportRun>, ApiError> {
    Ok(diesel::sql_query(
        "SELECT id, file_name, finished_at, rows_read, created, updated, unchanged, rejected, rejections
           FROM venue_imports ORDER BY id DESC LIMIT $1",
    )
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, &str)]) -> RawRow {
        RawRow {
            line: 2,
            cells: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn good() -> Vec<(&'static str, &'static str)> {
        vec![
            ("id", "lieu-1"),
            ("pivot", "43493312300029"),
            ("nom", "Médiathèque"),
            ("commune", "Reims"),
            ("code_postal", "51100"),
            ("code_insee", "51454"),
            ("adresse", "12 BIS RUE DE LECLERCQ"),
            ("latitude", "49.25"),
            ("longitude", "4.03"),
            ("telephone", "+33180059880"),
            ("date_maj", "2022-06-02"),
            (
                "services",
                "Prendre en main un ordinateur;Accéder à du matériel",
            ),
            ("conditions_acces", TAKES_PASS),
        ]
    }

    #[test]
    fn a_good_row_is_read_whole() {
        let listed = check_row(&row(&good())).expect("a good row");
        assert_eq!(listed.commune_code, "51454");
        assert_eq!(listed.departement, "51");
        assert!(listed.takes_pass);
        assert_eq!(listed.services.len(), 2);
        assert_eq!(listed.siret.as_deref(), Some("43493312300029"));
        // Without code_insee, the commune is found by its name and postcode.
        let mut without = good();
        without.retain(|(k, _)| *k != "code_insee");
        without.push(("commune", "REIMS"));
        assert_eq!(
            check_row(&row(&without)).expect("found").commune_code,
            "51454"
        );
        // An association known by its RNA number only.
        let mut rna = good();
        rna.push(("pivot", "W751234567"));
        assert_eq!(check_row(&row(&rna)).expect("RNA").siret, None);
    }

    #[test]
    fn each_rule_of_the_schema_refuses_its_row_with_a_reason() {
        for (field, value, reason) in [
            ("id", "", "id : valeur obligatoire"),
            ("pivot", "43493312300028", "pivot"),
            ("code_postal", "5110", "code_postal"),
            ("code_insee", "99999", "code_insee"),
            (
                "code_insee",
                "67482",
                "code_insee : 67482 n'est pas une commune du code postal 51100",
            ),
            ("telephone", "03 26 00 00 00", "telephone"),
            ("date_maj", "02/06/2022", "date_maj"),
            ("services", "Jardinage", "services : « Jardinage »"),
            ("conditions_acces", "Gratuit", "conditions_acces"),
            ("labels_nationaux", "Label Rouge", "labels_nationaux"),
            ("latitude", "", "latitude : absente"),
            ("longitude", "140.0", "longitude"),
            ("nom", "", "nom"),
        ] {
            let mut cells = good();
            cells.retain(|(k, _)| *k != field);
            if !value.is_empty() {
                cells.push((field, value));
            }
            let error = check_row(&row(&cells)).expect_err(field);
            assert!(error.contains(reason), "{field}={value:?}: {error}");
        }
    }

    #[test]
    fn reads_csv_with_quotes_and_line_breaks_and_json() {
        let csv = "\u{feff}\"id\",\"nom\",autre\r\n\"a\",\"Lieu, \"\"dit\"\"\",\"deux\nlignes\"\r\nb,Autre,\n\nc,seul\n";
        let rows = read_file(csv.as_bytes()).expect("CSV");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].cells["nom"], "Lieu, \"dit\"");
        assert_eq!(rows[0].cells["autre"], "deux\nlignes");
        assert_eq!(rows[1].line, 4);
        assert!(!rows[1].cells.contains_key("autre"));
        assert!(check_row(&rows[2])
            .unwrap_err()
            .contains("2 colonnes au lieu de 3"));
        let json =
            r#"[{"id":"a","nom":"Lieu","latitude":48.5,"services":["Accéder à du matériel"]}]"#;
        let rows = read_file(json.as_bytes()).expect("JSON");
        assert_eq!(rows[0].cells["latitude"], "48.5");
        assert_eq!(rows[0].cells["services"], "Accéder à du matériel");
        assert!(matches!(
            read_file(b"id,nom\n\"ouvert"),
            Err(FileError::Csv { .. })
        ));
        assert!(matches!(
            read_file(b"autre\nx\n"),
            Err(FileError::MissingColumn("id"))
        ));
        assert!(matches!(read_file(b""), Err(FileError::Empty)));
        assert!(matches!(read_file(b"[1]"), Err(FileError::Json(_))));
        assert!(matches!(
            read_file(&[0xff, 0xfe]),
            Err(FileError::NotUtf8(0))
        ));
    }

    #[test]
    fn a_second_row_with_the_same_id_is_refused() {
        let rows = vec![row(&good()), row(&good())];
        let (good, bad) = check_rows(&rows);
        assert_eq!(good.len(), 1);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].reason.contains("déjà vu"), "{:?}", bad[0]);
    }
}
