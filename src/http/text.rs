//! Text that arrives from outside, checked in one place for every JSON body,
//! query string and form: no control characters. PostgreSQL refuses NUL
//! outright (a 500 before this check), and the others (escape sequences,
//! bells, line breaks in a name) have no place in what we store, print on a
//! book or put in a CSV cell. Free text (`reason`, an alarm's `detail`) keeps
//! its tabs and line breaks, and so does a scanned `code` (scanners append a
//! line end) and a checkpoint (a signed note is several lines).

use std::fmt::Write;

use serde_json::Value;

use super::problem::ApiError;

/// Fields whose text may hold tabs and line breaks, by their last name:
/// free text, scanned codes, and the signed notes (checkpoints, several
/// lines each) of a phone's log alarm.
const MULTILINE: [&str; 5] = [
    "reason",
    "code",
    "detail",
    "kept_checkpoint",
    "new_checkpoint",
];

/// Whether the text of `field` (a path such as `items[1].code`) may hold
/// tabs and line breaks.
pub fn allows_line_breaks(field: &str) -> bool {
    MULTILINE.contains(&last_name(field))
}

/// Refuses a control character in the text of `field` (a path such as
/// `items[1].nonce`).
pub fn check(field: &str, text: &str) -> Result<(), ApiError> {
    let multiline = allows_line_breaks(field);
    match text
        .chars()
        .find(|c| c.is_control() && !(multiline && matches!(c, '\t' | '\n' | '\r')))
    {
        None => Ok(()),
        Some(c) => Err(ApiError::invalid_field(
            field,
            format!(
                "the control character U+{:04X} is not allowed here{}",
                u32::from(c),
                if multiline {
                    ""
                } else {
                    " (the field is one line)"
                }
            ),
        )),
    }
}

/// The same rule as a JSON Schema pattern (ECMA-262), for the OpenAPI
/// document: one line or free text, and not blank where the server trims
/// the text and wants something left.
pub fn pattern(free_text: bool, not_blank: bool) -> &'static str {
    match (free_text, not_blank) {
        (false, false) => r"^[^\x00-\x1F\x7F-\x9F]*$",
        (false, true) => r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$",
        (true, false) => r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$",
        (true, true) => {
            r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
        }
    }
}

/// Checks every string of a JSON document, names of members included.
pub fn check_json(value: &Value) -> Result<(), ApiError> {
    walk(value, &mut String::new())
}

/// Checks the names and values of a form or a query string.
pub fn check_pairs(pairs: &[(String, String)]) -> Result<(), ApiError> {
    for (name, value) in pairs {
        check("query", name)?;
        check(name, value)?;
    }
    Ok(())
}

fn walk(value: &Value, path: &mut String) -> Result<(), ApiError> {
    match value {
        Value::String(text) => check(field_name(path), text),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                let _ = write!(path, "[{i}]");
                walk(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Object(members) => {
            for (name, member) in members {
                check(field_name(path), name)?;
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(name);
                walk(member, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

fn field_name(path: &str) -> &str {
    if path.is_empty() {
        "body"
    } else {
        path
    }
}

/// `items[3].code` → `code`.
fn last_name(path: &str) -> &str {
    let last = path.rsplit('.').next().unwrap_or(path);
    last.split('[').next().unwrap_or(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(value: Value) -> Option<String> {
        check_json(&value).err().map(|e| e.errors[0].field.clone())
    }

    #[test]
    fn control_characters_are_refused_and_named_by_their_path() {
        assert_eq!(refused(json!({"name": "a\u{0}b"})), Some("name".into()));
        assert_eq!(
            refused(json!({"items": [{"nonce": "a"}, {"nonce": "b\u{0}"}]})),
            Some("items[1].nonce".into())
        );
        assert_eq!(
            refused(json!({"territory": {"departements": ["67", "6\u{1b}8"]}})),
            Some("territory.departements[1]".into())
        );
        assert_eq!(refused(json!({"x\u{0}": 1})), Some("body".into()));
        assert_eq!(refused(json!("\u{7f}")), Some("body".into()));
        // C1 controls too: U+0085 is a line break to some readers.
        assert_eq!(refused(json!({"name": "a\u{85}"})), Some("name".into()));
        assert_eq!(refused(json!({"name": "Zoé \u{2013} l'Atelier"})), None);
    }

    #[test]
    fn free_text_and_codes_keep_tabs_and_line_breaks_one_line_fields_do_not() {
        assert_eq!(refused(json!({"reason": "Perdu.\r\n\tVu."})), None);
        assert_eq!(refused(json!({"items": [{"code": "PN1:X\n"}]})), None);
        assert_eq!(refused(json!({"reason": "a\u{0}"})), Some("reason".into()));
        assert_eq!(refused(json!({"name": "a\nb"})), Some("name".into()));
        assert_eq!(refused(json!({"name": "a\tb"})), Some("name".into()));
    }

    #[test]
    fn forms_and_queries_are_checked_by_field() {
        let pairs = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        assert!(check_pairs(&pairs("reference", "R-1")).is_ok());
        let e = check_pairs(&pairs("reference", "R\u{0}")).unwrap_err();
        assert_eq!(e.errors[0].field, "reference");
        assert!(check_pairs(&pairs("a\u{0}", "x")).is_err());
    }
}
