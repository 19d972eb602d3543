//! `passnum venues import`: the national standard's sample, bad rows, a
//! second import that changes nothing, updates, and listed venues on the
//! beneficiary's page.

use std::process::Command;

use passnum::domain::directory::{self, Report};

use crate::helpers::{fixture, new_database, spawn_app_on, test_config, TestApp};
use crate::redemptions::issue_book;

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/lieux-mediation-numerique-exemple-valide.csv"
);

fn sample() -> String {
    std::fs::read_to_string(SAMPLE).unwrap()
}

/// The sample's header and its one row, with some cells replaced.
fn sample_row(replace: &[(&str, &str)]) -> String {
    let text = sample();
    let (_, row) = text.split_once('\n').unwrap();
    let mut row = row.trim_end().to_owned();
    for (from, to) in replace {
        assert!(row.contains(from), "{from} not in the sample row");
        row = row.replacen(from, to, 1);
    }
    row
}

fn header() -> String {
    sample().split_once('\n').unwrap().0.to_owned()
}

async fn import(app: &TestApp, name: &str, bytes: &[u8]) -> Report {
    let mut conn = app.state.pool.get().await.unwrap();
    directory::import(&mut conn, name, bytes)
        .await
        .unwrap()
        .unwrap()
}

async fn app() -> (TestApp, String) {
    let url = new_database().await;
    (spawn_app_on(test_config(&url)).await, url)
}

#[tokio::test]
async fn the_national_sample_imports_once_and_again_changes_nothing() {
    let (app, url) = app().await;
    // Through the command line, as an operator runs it.
    let out = Command::new(env!("CARGO_BIN_EXE_passnum"))
        .args(["venues", "import", SAMPLE])
        .env("DATABASE_URL", &url)
        .env("PASSNUM_KEYS_DIR", app.state.config.keys_dir.clone())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 ligne(s) lue(s) : 1 lieu(x) créé(s), 0 mis à jour, 0 inchangé(s), 0 ligne(s) refusée(s)"),
        "{stdout}"
    );
    assert_eq!(
        app.count(
            "organisations o JOIN venue_details d ON d.organisation_id = o.id
              WHERE o.national_id = 'structure-1' AND o.kind = 'venue' AND o.siret = '43493312300029'
                AND o.name = 'Anonymal' AND o.commune_code = '51454' AND o.departement = '51'
                AND o.address = '12 BIS RUE DE LECLERCQ, Le patio du bois de l''Aulne'
                AND o.phone = '+33180059880' AND o.accredited_since IS NULL
                AND d.takes_pass AND cardinality(d.services) = 3
                AND d.opening_hours = 'Mo-Fr 09:00-12:00,14:00-18:30; Sa 08:30-12:00'
                AND d.accessibility LIKE 'https://acceslibre.beta.gouv.fr/%'
                AND d.national_updated_on = '2022-06-02'"
        )
        .await,
        1
    );
    let organisations = app.count("organisations").await;
    let again = import(&app, "exemple.csv", sample().as_bytes()).await;
    assert_eq!(
        (
            again.rows_read,
            again.created,
            again.updated,
            again.unchanged
        ),
        (1, 0, 0, 1)
    );
    assert!(again.rejections.is_empty());
    assert_eq!(app.count("organisations").await, organisations);
    assert_eq!(app.count("venue_imports").await, 2);
    // The same file as JSON gives the same venue.
    let json = r#"[{"id":"structure-1","pivot":"43493312300029","nom":"Anonymal","commune":"Reims",
        "code_postal":"51100","code_insee":"51454","adresse":"12 BIS RUE DE LECLERCQ",
        "complement_adresse":"Le patio du bois de l'Aulne","latitude":43.52609,"longitude":5.41423,
        "telephone":"+33180059880","horaires":"Mo-Fr 09:00-12:00,14:00-18:30; Sa 08:30-12:00",
        "site_web":"https://www.laquincaillerie.tl/,https://m.facebook.com/laquincaillerienumerique/",
        "date_maj":"2022-06-02","accessibilite":"https://acceslibre.beta.gouv.fr/app/29-lampaul-plouarzel/a/bibliotheque-mediatheque/erp/mediatheque-13/",
        "services":["Devenir autonome dans les démarches administratives","Réaliser des démarches administratives avec un accompagnement","Prendre en main un smartphone ou une tablette"],
        "conditions_acces":"Payant : L'accès au lieu et/ou à ses services est payant;Accepte le Pass numérique : Il est possible d'utiliser un Pass numérique pour accéder au lieu"}]"#;
    let from_json = import(&app, "exemple.json", json.as_bytes()).await;
    assert_eq!(
        (from_json.created, from_json.updated, from_json.unchanged),
        (0, 0, 1),
        "{:?}",
        from_json.rejections
    );
}

#[tokio::test]
async fn bad_rows_are_reported_with_their_line_and_change_nothing() {
    let (app, _) = app().await;
    let good = sample_row(&[("structure-1", "lieu-bon")]);
    let file = [
        header(),
        good.clone(),
        sample_row(&[("structure-1", "lieu-cp"), ("\"51100\"", "\"5110\"")]),
        sample_row(&[
            ("structure-1", "lieu-service"),
            ("Prendre en main un smartphone ou une tablette", "Jardinage"),
        ]),
        good.clone(),
        sample_row(&[
            ("structure-1", "lieu-tel"),
            ("+33180059880", "03 26 00 00 00"),
        ]),
    ]
    .join("\n");
    let report = import(&app, "defauts.csv", file.as_bytes()).await;
    assert_eq!((report.rows_read, report.created), (5, 1));
    let lines: Vec<(usize, &str)> = report
        .rejections
        .iter()
        .map(|r| (r.line, r.id.as_deref().unwrap_or_default()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (3, "lieu-cp"),
            (4, "lieu-service"),
            (5, "lieu-bon"),
            (6, "lieu-tel")
        ]
    );
    assert!(
        report.rejections[0].reason.starts_with("code_postal"),
        "{:?}",
        report.rejections
    );
    assert!(report.rejections[1].reason.contains("« Jardinage »"));
    assert!(report.rejections[2].reason.contains("déjà vu ligne 2"));
    assert!(report.rejections[3].reason.starts_with("telephone"));
    assert_eq!(
        app.count("organisations WHERE national_id IS NOT NULL")
            .await,
        1
    );
    assert_eq!(
        app.count("venue_imports WHERE rejected = 4 AND created = 1 AND jsonb_array_length(rejections) = 4")
            .await,
        1
    );
    // A file that cannot be read at all stores nothing, not even a report.
    let mut conn = app.state.pool.get().await.unwrap();
    let unreadable = directory::import(&mut conn, "x.csv", b"\"id\",\"nom\"\n\"ouvert")
        .await
        .unwrap();
    assert!(unreadable.is_err());
    assert_eq!(app.count("venue_imports").await, 1);
}

#[tokio::test]
async fn a_changed_row_updates_its_venue_but_not_what_the_venue_said_itself() {
    let (app, _) = app().await;
    import(&app, "v1.csv", sample().as_bytes()).await;
    let renamed = [header(), sample_row(&[("Anonymal", "Anonymal numérique")])].join("\n");
    let report = import(&app, "v2.csv", renamed.as_bytes()).await;
    assert_eq!(
        (report.created, report.updated, report.unchanged),
        (0, 1, 0)
    );
    assert_eq!(
        app.count("organisations WHERE name = 'Anonymal numérique'")
            .await,
        1
    );

    // The venue completed its own details: later imports keep them.
    app.sql(
        "UPDATE venue_details SET self_edited_at = now(), opening_hours = 'Tu 14:00-17:00'
          WHERE organisation_id = (SELECT id FROM organisations WHERE national_id = 'structure-1')",
    )
    .await;
    app.sql("UPDATE organisations SET phone = '+33326000000' WHERE national_id = 'structure-1'")
        .await;
    let report = import(&app, "v3.csv", renamed.as_bytes()).await;
    assert_eq!((report.updated, report.unchanged), (0, 1));
    assert_eq!(
        app.count(
            "organisations o JOIN venue_details d ON d.organisation_id = o.id
              WHERE o.phone = '+33326000000' AND d.opening_hours = 'Tu 14:00-17:00'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn listed_venues_show_on_the_page_as_other_places_that_can_help() {
    let (app, _) = app().await;
    let f = fixture(&app).await;
    // A listed venue in Strasbourg, in the demo programme's territory; the
    // Reims one is outside it.
    let strasbourg = sample_row(&[
        ("structure-1", "lieu-strasbourg"),
        ("Anonymal", "Bibliothèque du Neudorf"),
        ("\"Reims\"", "\"Strasbourg\""),
        ("\"51100\"", "\"67100\""),
        ("\"51454\"", "\"67482\""),
        ("43.52609", "48.5657"),
        ("5.41423", "7.7628"),
    ]);
    let file = [header(), sample_row(&[]), strasbourg].join("\n");
    let report = import(&app, "lieux.csv", file.as_bytes()).await;
    assert_eq!(report.created, 2, "{:?}", report.rejections);
    let book = issue_book(&app, &f, 5).await;
    let url = book["page_url"].as_str().unwrap();
    let path = format!("/{}", url.splitn(4, '/').nth(3).unwrap());
    let html = app.get(&path).await.text().await.unwrap();
    assert!(
        html.contains("D’autres lieux qui peuvent vous aider"),
        "{html}"
    );
    assert!(html.contains("Bibliothèque du Neudorf"));
    assert!(html.contains("lundi au vendredi : 9 h à 12 h, 14 h à 18 h 30"));
    assert!(!html.contains("Anonymal"), "outside the territory");
    // The accredited demo venue is among those that take the coupons.
    let takes = html.find("Les lieux qui prennent vos coupons").unwrap();
    let others = html.find("D’autres lieux").unwrap();
    let demo = html.find("Médiathèque Malraux").unwrap();
    assert!(takes < demo && demo < others);
}

#[tokio::test]
async fn the_operator_sees_import_reports_and_a_venue_completes_its_details() {
    use crate::web::Visitor;
    let (app, _) = app().await;
    let f = fixture(&app).await;
    let bad = [
        header(),
        sample_row(&[]),
        sample_row(&[("\"51100\"", "\"5110\"")]),
    ]
    .join("\n");
    import(&app, "2026-12-01_lieux.csv", bad.as_bytes()).await;

    let mut operator = Visitor::login(&app, "operateur@demo.passnum.test").await;
    let page = operator.get("/operateur/imports").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("2026-12-01_lieux.csv"), "{}", page.body);
    assert!(
        page.body.contains("Ligne 3 (structure-1) : "),
        "{}",
        page.body
    );
    assert!(page.body.contains("code_postal"));

    // The demo venue completes its details; the beneficiary's page shows them.
    let mut venue = Visitor::login(&app, "lieu@demo.passnum.test").await;
    let form = venue.get("/lieu/mon-lieu").await;
    assert_eq!(form.status, 200);
    let token = form.csrf_token();
    let refused = venue
        .post(
            "/lieu/mon-lieu",
            &[
                ("csrf_token", &token),
                ("phone", "appelez-nous"),
                ("opening_hours", ""),
                ("accessibility", ""),
            ],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("Saisissez un numéro de téléphone"));
    let saved = venue
        .post(
            "/lieu/mon-lieu",
            &[
                ("csrf_token", &token),
                ("phone", "03 88 12 34 56"),
                ("opening_hours", "We 14:00-18:00"),
                ("accessibility", "Accès de plain-pied"),
            ],
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert!(saved.body.contains("mercredi : 14 h à 18 h"));
    assert_eq!(
        app.count(&format!(
            "organisations o JOIN venue_details d ON d.organisation_id = o.id
              WHERE o.id = {} AND o.phone = '+33388123456' AND d.self_edited_at IS NOT NULL
                AND d.accessibility = 'Accès de plain-pied'",
            f.org_ids["lieu@demo.passnum.test"]
        ))
        .await,
        1
    );
    let book = issue_book(&app, &f, 5).await;
    let url = book["page_url"].as_str().unwrap();
    let path = format!("/{}", url.splitn(4, '/').nth(3).unwrap());
    let html = app.get(&path).await.text().await.unwrap();
    assert!(html.contains("mercredi : 14 h à 18 h"), "{html}");
    assert!(html.contains("03 88 12 34 56"));
}
