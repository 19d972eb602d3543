//! Factur-X invoices and credit notes drawn from venues' signed extracts,
//! checked by the independent validators (factur-x, the EN 16931
//! Schematron under saxonche, pikepdf) that `scripts/test` installs.

use std::path::{Path, PathBuf};

use passnum::auth::Role;
use passnum::domain::invoices::identifiers::french_vat_number;
use passnum::domain::paris;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{expect_problem, fixture, login_token, spawn_app, Fixture, TestApp};
use crate::redemptions::{issue_book, redeem};
use crate::statements::close;

/// The Python with the validators: `PASSNUM_FACTURX_PYTHON`, else the
/// environment `scripts/install-facturx-validators` makes in the target dir.
fn validators_python() -> PathBuf {
    if let Some(python) = std::env::var_os("PASSNUM_FACTURX_PYTHON") {
        return PathBuf::from(python);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let python = target.join("facturx-venv/bin/python");
    assert!(
        python.exists(),
        "the Factur-X validators are not installed: run ./scripts/install-facturx-validators \
         (./scripts/test does), or set PASSNUM_FACTURX_PYTHON"
    );
    python
}

/// Runs the three validators on the PDFs (each with its XML beside it).
fn validate(pdfs: &[PathBuf]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent/check_facturx.py");
    let out = std::process::Command::new(validators_python())
        .arg(script)
        .args(pdfs)
        .output()
        .expect("the validators run");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains(&format!("{} passed, 0 failed", pdfs.len() * 3)),
        "{report}"
    );
}

async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.with_token(Method::GET, path, token)
        .send()
        .await
        .unwrap()
}

async fn put(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.with_token(Method::PUT, path, token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Downloads a document's PDF and XML into `dir`; returns the PDF's path and the XML.
async fn download(
    app: &TestApp,
    token: &str,
    path: &str,
    xml_name: &str,
    dir: &Path,
    name: &str,
) -> (PathBuf, String) {
    let res = get(app, token, path).await;
    assert_eq!(res.status(), 200, "{path}");
    assert_eq!(res.headers()["content-type"], "application/pdf");
    let pdf = res.bytes().await.unwrap();
    let res = get(app, token, &format!("{path}/{xml_name}")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/xml");
    let xml = res.text().await.unwrap();
    let pdf_path = dir.join(format!("{name}.pdf"));
    std::fs::write(&pdf_path, &pdf).unwrap();
    std::fs::write(dir.join(format!("{name}.xml")), &xml).unwrap();
    if let Some(keep) = std::env::var_os("PASSNUM_INVOICES_DIR") {
        std::fs::write(Path::new(&keep).join(format!("{name}.pdf")), &pdf).unwrap();
    }
    (pdf_path, xml)
}

/// The text of the first `<tag>` in the XML.
fn element<'x>(xml: &'x str, tag: &str) -> Option<&'x str> {
    let start = [format!("<{tag}>"), format!("<{tag} ")]
        .iter()
        .filter_map(|open| xml.find(open.as_str()))
        .min()?;
    let open_end = start + xml[start..].find('>')? + 1;
    let close = open_end + xml[open_end..].find(&format!("</{tag}>"))?;
    Some(&xml[open_end..close])
}

/// The document's number (BT-1).
fn number(xml: &str) -> Option<&str> {
    element(element(xml, "rsm:ExchangedDocument")?, "ram:ID")
}

/// A venue of its own, a commune's digital-mediation space, with a user.
async fn commune_venue(app: &TestApp) -> (i64, String) {
    use passnum::domain::organisations::{self, NewOrganisation};
    let mut conn = app.state.pool.get().await.unwrap();
    let org = organisations::create(
        &mut conn,
        NewOrganisation {
            kind: Role::Venue,
            name: "Espace numérique de la Ville de Sélestat".into(),
            siret: passnum::demo::siret_from("21670462", "0001"),
            address: "9 place d'Armes".into(),
            postcode: "67600".into(),
            commune_code: "67462".into(),
            latitude: Some(48.2594),
            longitude: Some(7.4542),
            phone: None,
        },
    )
    .await
    .unwrap();
    let until = paris::today() + chrono::Days::new(365);
    organisations::accredit(&mut conn, &org, until)
        .await
        .unwrap();
    app.sql(&format!(
        "UPDATE organisations SET accredited_since = now() - interval '30 days' WHERE id = {}",
        org.id
    ))
    .await;
    let user = passnum::domain::accounts::insert(
        &mut conn,
        org.id,
        "numerique@selestat.example",
        "$argon2id$unused",
    )
    .await
    .unwrap();
    (org.id, app.token_for(user.id, org.id, Role::Venue).await)
}

fn association() -> Value {
    json!({
        "legal_name": "Association Les Clés du numérique",
        "address": "3 rue des Tanneurs",
        "postcode": "67000",
        "city": "Strasbourg",
        "vat_regime": "exempt",
        "vat_exemption_reason": "TVA non applicable, art. 261-7-1° b du CGI",
        "iban": "FR76 3000 6000 0112 3456 7890 189",
        "bic": "AGRIFRPP"
    })
}

fn company(siret: &str) -> Value {
    json!({
        "legal_name": "Numérique Solidaire SAS",
        "address": "12 Grand'Rue",
        "postcode": "68000",
        "city": "Colmar",
        "vat_regime": "vat",
        "vat_number": french_vat_number(&siret[..9]).unwrap(),
        "vat_rate_basis_points": 2000,
        "iban": "DE89 3704 0044 0532 0130 00"
    })
}

fn commune() -> Value {
    json!({
        "legal_name": "Commune de Sélestat",
        "address": "9 place d'Armes",
        "postcode": "67600",
        "city": "Sélestat",
        "vat_regime": "exempt",
        "vat_exemption_reason": "TVA non applicable, art. 256 B du CGI",
        "iban": "FR80 3000 1000 6400 0000 0000 065",
        "bic": "BDFEFRPPCCT"
    })
}

async fn siret_of(app: &TestApp, id: i64) -> String {
    let mut conn = app.state.pool.get().await.unwrap();
    passnum::domain::organisations::find(&mut conn, id)
        .await
        .unwrap()
        .siret
        .unwrap()
}

async fn buyer(app: &TestApp, f: &Fixture) -> Value {
    let funder_siret = siret_of(app, f.org_ids["financeur@demo.passnum.test"]).await;
    let res = put(
        app,
        &f.tokens[&Role::Funder],
        &format!("/api/v1/programs/{}/invoicing", f.program_id),
        json!({"buyer_siret": funder_siret, "service_code": "PASSNUM-67", "engagement_number": "EJ-2026-000123"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn three_venues_get_factur_x_invoices_equal_to_their_signed_extracts() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let (lieu, lieu2) = (
        f.org_ids["lieu@demo.passnum.test"],
        f.org_ids["lieu2@demo.passnum.test"],
    );
    let lieu2_token = login_token(&app, "lieu2@demo.passnum.test").await;
    let (ville, ville_token) = commune_venue(&app).await;
    let book = issue_book(&app, &f, 10).await;
    let code = |i: usize| book["vouchers"][i]["code"].as_str().unwrap().to_owned();
    let venues = [
        (lieu, f.tokens[&Role::Venue].clone(), 0..3),
        (lieu2, lieu2_token.clone(), 3..5),
        (ville, ville_token.clone(), 5..6),
    ];
    for (_, token, vouchers) in &venues {
        for i in vouchers.clone() {
            assert_eq!(redeem(&app, token, &code(i)).await.status(), 201);
        }
    }
    let statement: Value = close(&app, &f, paris::today()).await.json().await.unwrap();
    let id = &statement["id"];

    // Without invoicing details: a 409 naming what is missing, nothing issued.
    let res = get(
        &app,
        &f.tokens[&Role::Venue],
        &format!("/api/v1/statements/{id}/invoices/{lieu}"),
    )
    .await;
    let problem = expect_problem(res, 409, "conflict").await;
    assert_eq!(
        problem["missing"],
        json!([
            "legal_name",
            "address",
            "postcode",
            "city",
            "vat_regime",
            "iban"
        ])
    );
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("legal_name, address"));
    assert_eq!(app.count("invoices").await, 0);

    let details = [
        (lieu, &f.tokens[&Role::Venue], association()),
        (lieu2, &lieu2_token, company(&siret_of(&app, lieu2).await)),
        (ville, &ville_token, commune()),
    ];
    for (venue, token, body) in &details {
        let res = put(
            &app,
            token,
            &format!("/api/v1/organisations/{venue}/invoicing"),
            body.clone(),
        )
        .await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    }
    buyer(&app, &f).await;

    let dir = tempfile::tempdir().unwrap();
    let mut pdfs = Vec::new();
    for ((venue, token, _), name) in venues.iter().zip(["association", "entreprise", "commune"]) {
        let extract: Value = get(&app, token, &format!("/api/v1/statements/{id}"))
            .await
            .json()
            .await
            .unwrap();
        let total = extract["total_cents"].as_i64().unwrap();
        let (pdf, xml) = download(
            &app,
            token,
            &format!("/api/v1/statements/{id}/invoices/{venue}"),
            "invoice.xml",
            dir.path(),
            name,
        )
        .await;
        pdfs.push(pdf);
        assert_eq!(element(&xml, "ram:TypeCode"), Some("380"));
        // Each venue numbers its own invoices.
        assert_eq!(number(&xml), Some("PN-000001"));
        let cents = |tag| {
            let text = element(&xml, tag).unwrap().replace('.', "");
            text.parse::<i64>().unwrap()
        };
        assert_eq!(cents("ram:GrandTotalAmount"), total, "{name}");
        assert_eq!(cents("ram:DuePayableAmount"), total, "{name}");
        assert_eq!(element(&xml, "ram:BuyerReference"), Some("PASSNUM-67"));
        let order = element(&xml, "ram:BuyerOrderReferencedDocument").unwrap();
        assert_eq!(
            element(order, "ram:IssuerAssignedID"),
            Some("EJ-2026-000123")
        );
        assert!(
            xml.contains(extract["sha256"].as_str().unwrap()),
            "the extract's digest is noted"
        );
        // The funder reads the same document, not a second one.
        let res = get(
            &app,
            &f.tokens[&Role::Funder],
            &format!("/api/v1/statements/{id}/invoices/{venue}/invoice.xml"),
        )
        .await;
        assert_eq!(res.text().await.unwrap(), xml);
    }
    // The VAT-registered company: 2 × 20 € with VAT are 33,33 € + 6,67 € of VAT.
    let company_xml = std::fs::read_to_string(dir.path().join("entreprise.xml")).unwrap();
    assert_eq!(
        element(&company_xml, "ram:TaxBasisTotalAmount"),
        Some("33.33")
    );
    assert!(
        company_xml.contains("<ram:TaxTotalAmount currencyID=\"EUR\">6.67</ram:TaxTotalAmount>")
    );
    assert!(company_xml.contains("schemeID=\"VA\""));
    validate(&pdfs);
    assert_eq!(app.count("invoices").await, 3);

    // Another venue's invoice is not found, for a venue; a funder of another
    // programme sees nothing either.
    let res = get(
        &app,
        &lieu2_token,
        &format!("/api/v1/statements/{id}/invoices/{lieu}"),
    )
    .await;
    expect_problem(res, 404, "not-found").await;
    let res = get(
        &app,
        &f.other_tokens[&Role::Funder],
        &format!("/api/v1/statements/{id}/invoices/{lieu}"),
    )
    .await;
    expect_problem(res, 404, "not-found").await;
    // No workshop was taken back: no credit note.
    let res = get(
        &app,
        &f.tokens[&Role::Venue],
        &format!("/api/v1/statements/{id}/credit-notes/{lieu}"),
    )
    .await;
    expect_problem(res, 404, "not-found").await;

    // Paid: the list says so, with the transfer.
    let res = app
        .with_token(Method::POST, &format!("/api/v1/statements/{id}/payments"), &f.tokens[&Role::Funder])
        .json(&json!({"venue_organisation_id": lieu, "amount_cents": 6000, "paid_on": paris::today().to_string(), "reference": "VIR-2026-0042"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let list: Value = get(
        &app,
        &f.tokens[&Role::Funder],
        &format!("/api/v1/statements/{id}/invoices"),
    )
    .await
    .json()
    .await
    .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let paid = items
        .iter()
        .find(|i| i["venue_organisation_id"] == lieu)
        .unwrap();
    assert_eq!(
        (
            &paid["status"],
            &paid["payment_reference"],
            &paid["total_cents"]
        ),
        (&json!("paid"), &json!("VIR-2026-0042"), &json!(6000))
    );
    assert!(items
        .iter()
        .filter(|i| i["venue_organisation_id"] != lieu)
        .all(|i| i["status"] == "issued"));
    let own: Value = get(
        &app,
        &lieu2_token,
        &format!("/api/v1/statements/{id}/invoices"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(own["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_carried_negative_balance_gives_a_credit_note_on_the_invoice_it_corrects() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let (venue, token) = (
        f.org_ids["lieu@demo.passnum.test"],
        f.tokens[&Role::Venue].clone(),
    );
    let siret = siret_of(&app, venue).await;
    let res = put(
        &app,
        &token,
        &format!("/api/v1/organisations/{venue}/invoicing"),
        company(&siret),
    )
    .await;
    assert_eq!(res.status(), 200);
    let book = issue_book(&app, &f, 5).await;
    let receipt: Value = redeem(&app, &token, book["vouchers"][0]["code"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    app.sql(&format!(
        "UPDATE redemptions SET redeemed_at = now() - interval '1 day' WHERE id = {}",
        receipt["id"]
    ))
    .await;
    let first: Value = close(&app, &f, paris::today() - chrono::Days::new(1))
        .await
        .json()
        .await
        .unwrap();
    let res = app
        .with_token(
            Method::POST,
            &format!("/api/v1/redemptions/{}/reverse", receipt["id"]),
            &f.tokens[&Role::Funder],
        )
        .json(&json!({"reason": "atelier non tenu"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let second: Value = close(&app, &f, paris::today()).await.json().await.unwrap();
    assert_eq!(second["venues"][0]["total_cents"], -2000);
    assert_eq!(second["venues"][0]["status"], "carried");

    // The second extract has nothing to invoice; its credit note comes first
    // asked, and issues the invoice it corrects (the first statement's) before it.
    let res = get(
        &app,
        &token,
        &format!("/api/v1/statements/{}/invoices/{venue}", second["id"]),
    )
    .await;
    expect_problem(res, 404, "not-found").await;
    let dir = tempfile::tempdir().unwrap();
    let (credit_pdf, credit) = download(
        &app,
        &token,
        &format!("/api/v1/statements/{}/credit-notes/{venue}", second["id"]),
        "credit-note.xml",
        dir.path(),
        "avoir",
    )
    .await;
    assert_eq!(element(&credit, "ram:TypeCode"), Some("381"));
    assert_eq!(number(&credit), Some("PN-000002"));
    assert_eq!(element(&credit, "ram:GrandTotalAmount"), Some("20.00"));
    let reference = element(&credit, "ram:InvoiceReferencedDocument").unwrap();
    assert_eq!(
        element(reference, "ram:IssuerAssignedID"),
        Some("PN-000001")
    );
    let (invoice_pdf, invoice) = download(
        &app,
        &token,
        &format!("/api/v1/statements/{}/invoices/{venue}", first["id"]),
        "invoice.xml",
        dir.path(),
        "facture",
    )
    .await;
    assert_eq!(number(&invoice), Some("PN-000001"));
    validate(&[invoice_pdf, credit_pdf]);
}

#[tokio::test]
async fn invoices_asked_for_at_once_are_issued_once_in_an_unbroken_sequence() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let (venue, token) = (
        f.org_ids["lieu@demo.passnum.test"],
        f.tokens[&Role::Venue].clone(),
    );
    let res = put(
        &app,
        &token,
        &format!("/api/v1/organisations/{venue}/invoicing"),
        association(),
    )
    .await;
    assert_eq!(res.status(), 200);
    let book = issue_book(&app, &f, 5).await;
    for i in 0..3 {
        let receipt: Value = redeem(&app, &token, book["vouchers"][i]["code"].as_str().unwrap())
            .await
            .json()
            .await
            .unwrap();
        if i < 2 {
            app.sql(&format!(
                "UPDATE redemptions SET redeemed_at = now() - interval '1 day' WHERE id = {}",
                receipt["id"]
            ))
            .await;
        }
    }
    let first: Value = close(&app, &f, paris::today() - chrono::Days::new(1))
        .await
        .json()
        .await
        .unwrap();
    let second: Value = close(&app, &f, paris::today()).await.json().await.unwrap();
    let requests = (0..12).map(|i| {
        let statement = if i % 2 == 0 {
            &first["id"]
        } else {
            &second["id"]
        };
        let path = format!("/api/v1/statements/{statement}/invoices/{venue}/invoice.xml");
        let (app, token) = (&app, &token);
        async move {
            let xml = get(app, token, &path).await.text().await.unwrap();
            (i % 2, number(&xml).unwrap().to_owned())
        }
    });
    let numbers = futures_util::future::join_all(requests).await;
    let of = |parity| {
        let mut seen: Vec<&String> = numbers
            .iter()
            .filter(|(p, _)| *p == parity)
            .map(|(_, n)| n)
            .collect();
        seen.dedup();
        seen
    };
    let (a, b) = (of(0), of(1));
    assert_eq!((a.len(), b.len()), (1, 1), "{numbers:?}");
    let mut both = [a[0].as_str(), b[0].as_str()];
    both.sort_unstable();
    assert_eq!(both, ["PN-000001", "PN-000002"]);
    assert_eq!(app.count("invoices").await, 2);
    // Issued is final: the database refuses to change it.
    let mut conn = app.state.pool.get().await.unwrap();
    let tamper = diesel_async::RunQueryDsl::execute(
        diesel::sql_query("UPDATE invoices SET total_cents = 1"),
        &mut conn,
    )
    .await;
    assert!(tamper.is_err());
    let gap = diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "INSERT INTO invoices (statement_id, venue_organisation_id, type_code, sequence, number, issued_on, total_cents, document, xml)
             VALUES ({}, {venue}, 381, 9, 'PN-000009', now()::date, 100, '{{}}', '')",
            second["id"]
        )),
        &mut conn,
    )
    .await;
    assert!(gap.is_err(), "a number that skips one is refused");
}

#[tokio::test]
async fn invoicing_details_are_checked_and_kept_to_their_venue() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let venue = f.org_ids["lieu@demo.passnum.test"];
    let lieu2 = f.org_ids["lieu2@demo.passnum.test"];
    let token = &f.tokens[&Role::Venue];
    let path = format!("/api/v1/organisations/{venue}/invoicing");
    let res = get(&app, token, &path).await;
    expect_problem(res, 404, "not-found").await;
    let mut wrong = association();
    wrong["iban"] = json!("FR76 3000 6000 0112 3456 7890 188");
    wrong["vat_regime"] = json!("vat");
    let res = put(&app, token, &path, wrong).await;
    let problem = expect_problem(res, 422, "validation-error").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "vat_number",
            "vat_rate_basis_points",
            "vat_exemption_reason",
            "iban"
        ]
    );
    assert!(problem["errors"][3]["message"]
        .as_str()
        .unwrap()
        .contains("RIB"));
    assert_eq!(app.count("venue_invoicing").await, 0);

    let res = put(&app, token, &path, association()).await;
    assert_eq!(res.status(), 200);
    let saved: Value = res.json().await.unwrap();
    assert_eq!(saved["iban"], "FR7630006000011234567890189");
    assert_eq!(saved["vat_regime"], "exempt");
    let read: Value = get(&app, token, &path).await.json().await.unwrap();
    assert_eq!(read["legal_name"], "Association Les Clés du numérique");
    // The operator reads it; another venue and a funder do not.
    let operator = &f.tokens[&Role::Operator];
    assert_eq!(get(&app, operator, &path).await.status(), 200);
    let other = login_token(&app, "lieu2@demo.passnum.test").await;
    expect_problem(get(&app, &other, &path).await, 404, "not-found").await;
    expect_problem(
        put(&app, &other, &path, association()).await,
        404,
        "not-found",
    )
    .await;
    expect_problem(
        get(&app, &f.tokens[&Role::Funder], &path).await,
        403,
        "forbidden",
    )
    .await;
    expect_problem(
        put(
            &app,
            operator,
            &format!("/api/v1/organisations/{lieu2}/invoicing"),
            association(),
        )
        .await,
        403,
        "forbidden",
    )
    .await;

    // The programme's buyer: the funder's own SIRET until it records one.
    let program_path = format!("/api/v1/programs/{}/invoicing", f.program_id);
    let default: Value = get(&app, &f.tokens[&Role::Funder], &program_path)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(default["recorded"], false);
    assert_eq!(
        default["buyer_siret"],
        siret_of(&app, f.org_ids["financeur@demo.passnum.test"]).await
    );
    let res = put(
        &app,
        &f.tokens[&Role::Funder],
        &program_path,
        json!({"buyer_siret": "12345678901234"}),
    )
    .await;
    expect_problem(res, 422, "validation-error").await;
    let saved = buyer(&app, &f).await;
    assert_eq!(saved["service_code"], "PASSNUM-67");
    expect_problem(
        get(&app, &f.other_tokens[&Role::Funder], &program_path).await,
        404,
        "not-found",
    )
    .await;
}
