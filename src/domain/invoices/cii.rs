//! The invoice as UN/CEFACT Cross Industry Invoice XML (D16B), the Factur-X
//! 1.0 profile EN 16931 ("COMFORT"): what Chorus Pro and French e-invoicing
//! platforms read. Elements are written in the order the Factur-X schema
//! requires; the business terms (BT-…) of EN 16931 are named beside them.

use std::fmt::Write;

use chrono::NaiveDate;

use super::document::{Invoice, Kind, Party, Tax};
use crate::render::statement_pdf::euros;

/// The guideline of the EN 16931 profile (BT-24).
pub const GUIDELINE: &str = "urn:cen.eu:en16931:2017";

/// Writes the XML, UTF-8 without a byte order mark.
pub fn xml(invoice: &Invoice) -> Vec<u8> {
    let mut x = Xml::default();
    x.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.raw(concat!(
        "<rsm:CrossIndustryInvoice",
        " xmlns:rsm=\"urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100\"",
        " xmlns:qdt=\"urn:un:unece:uncefact:data:standard:QualifiedDataType:100\"",
        " xmlns:ram=\"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100\"",
        " xmlns:udt=\"urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100\">\n"
    ));
    x.open("rsm:ExchangedDocumentContext");
    x.open("ram:GuidelineSpecifiedDocumentContextParameter");
    x.leaf("ram:ID", GUIDELINE);
    x.close("ram:GuidelineSpecifiedDocumentContextParameter");
    x.close("rsm:ExchangedDocumentContext");

    x.open("rsm:ExchangedDocument");
    x.leaf("ram:ID", &invoice.number); // BT-1
    x.leaf("ram:TypeCode", &invoice.kind.type_code().to_string()); // BT-3
    x.open("ram:IssueDateTime"); // BT-2
    x.date("udt:DateTimeString", invoice.issued_on);
    x.close("ram:IssueDateTime");
    for (subject, content) in notes(invoice) {
        x.open("ram:IncludedNote"); // BG-1
        x.leaf("ram:Content", &content);
        x.leaf("ram:SubjectCode", subject);
        x.close("ram:IncludedNote");
    }
    x.close("rsm:ExchangedDocument");

    x.open("rsm:SupplyChainTradeTransaction");
    let (category, rate) = category(&invoice.tax);
    for (i, line) in invoice.lines.iter().enumerate() {
        x.open("ram:IncludedSupplyChainTradeLineItem"); // BG-25
        x.open("ram:AssociatedDocumentLineDocument");
        x.leaf("ram:LineID", &(i + 1).to_string()); // BT-126
        x.close("ram:AssociatedDocumentLineDocument");
        x.open("ram:SpecifiedTradeProduct");
        x.leaf("ram:SellerAssignedID", &line.theme); // BT-155
        x.leaf(
            "ram:Name",
            &format!("Atelier pass numérique : {}", line.label),
        ); // BT-153
        x.close("ram:SpecifiedTradeProduct");
        x.open("ram:SpecifiedLineTradeAgreement");
        x.open("ram:NetPriceProductTradePrice");
        x.leaf("ram:ChargeAmount", &price(line.unit_price_e4)); // BT-146
        x.close("ram:NetPriceProductTradePrice");
        x.close("ram:SpecifiedLineTradeAgreement");
        x.open("ram:SpecifiedLineTradeDelivery");
        // BT-129, BT-130: C62 is "one", a unit of count.
        x.leaf_with(
            "ram:BilledQuantity",
            "unitCode=\"C62\"",
            &line.quantity.to_string(),
        );
        x.close("ram:SpecifiedLineTradeDelivery");
        x.open("ram:SpecifiedLineTradeSettlement");
        x.open("ram:ApplicableTradeTax");
        x.leaf("ram:TypeCode", "VAT");
        x.leaf("ram:CategoryCode", category); // BT-151
        x.leaf("ram:RateApplicablePercent", &rate); // BT-152
        x.close("ram:ApplicableTradeTax");
        x.open("ram:SpecifiedTradeSettlementLineMonetarySummation");
        x.leaf("ram:LineTotalAmount", &amount(line.net_cents)); // BT-131
        x.close("ram:SpecifiedTradeSettlementLineMonetarySummation");
        x.close("ram:SpecifiedLineTradeSettlement");
        x.close("ram:IncludedSupplyChainTradeLineItem");
    }

    x.open("ram:ApplicableHeaderTradeAgreement");
    if let Some(code) = &invoice.buyer.service_code {
        x.leaf("ram:BuyerReference", code); // BT-10
    }
    x.open("ram:SellerTradeParty"); // BG-4
    party(&mut x, &invoice.seller.party);
    x.open("ram:SpecifiedTaxRegistration");
    match &invoice.seller.vat_number {
        Some(number) => x.leaf_with("ram:ID", "schemeID=\"VA\"", number), // BT-31
        // An exempt seller without a VAT number is known to the tax office
        // by its SIREN, the French tax identifier of businesses (BT-32).
        None => x.leaf_with(
            "ram:ID",
            "schemeID=\"FC\"",
            siren(&invoice.seller.party.siret),
        ),
    }
    x.close("ram:SpecifiedTaxRegistration");
    x.close("ram:SellerTradeParty");
    x.open("ram:BuyerTradeParty"); // BG-7
    party(&mut x, &invoice.buyer.party);
    x.close("ram:BuyerTradeParty");
    if let Some(number) = &invoice.buyer.engagement_number {
        x.open("ram:BuyerOrderReferencedDocument");
        x.leaf("ram:IssuerAssignedID", number); // BT-13
        x.close("ram:BuyerOrderReferencedDocument");
    }
    x.close("ram:ApplicableHeaderTradeAgreement");

    x.open("ram:ApplicableHeaderTradeDelivery");
    x.close("ram:ApplicableHeaderTradeDelivery");

    x.open("ram:ApplicableHeaderTradeSettlement");
    x.leaf("ram:InvoiceCurrencyCode", "EUR"); // BT-5
    if invoice.kind == Kind::Invoice {
        x.open("ram:SpecifiedTradeSettlementPaymentMeans"); // BG-16
        x.leaf("ram:TypeCode", "58"); // BT-81: SEPA credit transfer
        x.open("ram:PayeePartyCreditorFinancialAccount");
        x.leaf("ram:IBANID", &invoice.seller.iban); // BT-84
        x.close("ram:PayeePartyCreditorFinancialAccount");
        if let Some(bic) = &invoice.seller.bic {
            x.open("ram:PayeeSpecifiedCreditorFinancialInstitution");
            x.leaf("ram:BICID", bic); // BT-86
            x.close("ram:PayeeSpecifiedCreditorFinancialInstitution");
        }
        x.close("ram:SpecifiedTradeSettlementPaymentMeans");
    }
    let totals = &invoice.totals;
    x.open("ram:ApplicableTradeTax"); // BG-23
    x.leaf("ram:CalculatedAmount", &amount(totals.vat_cents)); // BT-117
    x.leaf("ram:TypeCode", "VAT");
    if let Tax::Exempt { reason } = &invoice.tax {
        x.leaf("ram:ExemptionReason", reason); // BT-120
    }
    x.leaf("ram:BasisAmount", &amount(totals.net_cents)); // BT-116
    x.leaf("ram:CategoryCode", category); // BT-118
    x.leaf("ram:RateApplicablePercent", &rate); // BT-119
    x.close("ram:ApplicableTradeTax");
    x.open("ram:BillingSpecifiedPeriod"); // BG-14
    x.open("ram:StartDateTime");
    x.date("udt:DateTimeString", invoice.source.period_start); // BT-73
    x.close("ram:StartDateTime");
    x.open("ram:EndDateTime");
    x.date("udt:DateTimeString", invoice.source.period_end); // BT-74
    x.close("ram:EndDateTime");
    x.close("ram:BillingSpecifiedPeriod");
    x.open("ram:SpecifiedTradePaymentTerms");
    x.leaf("ram:Description", &payment_terms(invoice)); // BT-20
    if let Some(due) = invoice.due_on {
        x.open("ram:DueDateDateTime");
        x.date("udt:DateTimeString", due); // BT-9
        x.close("ram:DueDateDateTime");
    }
    x.close("ram:SpecifiedTradePaymentTerms");
    x.open("ram:SpecifiedTradeSettlementHeaderMonetarySummation"); // BG-22
    x.leaf("ram:LineTotalAmount", &amount(totals.net_cents)); // BT-106
    x.leaf("ram:TaxBasisTotalAmount", &amount(totals.net_cents)); // BT-109
    x.leaf_with(
        "ram:TaxTotalAmount",
        "currencyID=\"EUR\"",
        &amount(totals.vat_cents),
    ); // BT-110
    if totals.rounding_cents != 0 {
        x.leaf("ram:RoundingAmount", &amount(totals.rounding_cents)); // BT-114
    }
    x.leaf("ram:GrandTotalAmount", &amount(totals.gross_cents())); // BT-112
    x.leaf("ram:DuePayableAmount", &amount(totals.due_cents())); // BT-115
    x.close("ram:SpecifiedTradeSettlementHeaderMonetarySummation");
    for reference in &invoice.corrects {
        x.open("ram:InvoiceReferencedDocument"); // BG-3
        x.leaf("ram:IssuerAssignedID", &reference.number); // BT-25
        x.open("ram:FormattedIssueDateTime");
        x.date("qdt:DateTimeString", reference.issued_on); // BT-26
        x.close("ram:FormattedIssueDateTime");
        x.close("ram:InvoiceReferencedDocument");
    }
    x.close("ram:ApplicableHeaderTradeSettlement");
    x.close("rsm:SupplyChainTradeTransaction");
    x.raw("</rsm:CrossIndustryInvoice>\n");
    x.out.into_bytes()
}

/// The notes (BT-22) with their subject codes (BT-21, UNTDID 4451): where
/// the document comes from, then the legal mentions on late payment.
pub fn notes(invoice: &Invoice) -> Vec<(&'static str, String)> {
    let source = &invoice.source;
    let mut notes = vec![(
        "AAI",
        format!(
            "Relevé n° {} du programme « {} », du {} au {} : extrait signé du lieu, empreinte SHA-256 {}.",
            source.statement_number,
            source.program_name,
            source.period_start.format("%d/%m/%Y"),
            source.period_end.format("%d/%m/%Y"),
            source.sha256
        ),
    )];
    if invoice.kind == Kind::Invoice && source.extract_total_cents != invoice.totals.due_cents() {
        notes.push((
            "AAI",
            format!(
                "Le relevé compte aussi des ateliers repris ou un solde reporté : le financeur verse {} au titre de ce relevé.",
                euros(source.extract_total_cents.max(0))
            ),
        ));
    }
    if invoice.kind == Kind::Invoice {
        notes.push((
            "PMT",
            "En cas de retard de paiement, indemnité forfaitaire pour frais de recouvrement : 40 € (art. L441-10 et D441-5 du code de commerce).".to_owned(),
        ));
        notes.push(("AAB", "Pas d'escompte pour paiement anticipé.".to_owned()));
    }
    notes
}

/// BT-20: how the document is settled.
pub fn payment_terms(invoice: &Invoice) -> String {
    match invoice.kind {
        Kind::Invoice => format!(
            "Virement SEPA à {} jours de la date de facture.",
            super::document::PAYMENT_DAYS
        ),
        Kind::CreditNote => format!(
            "Avoir imputé sur les paiements du programme : déduit du montant du relevé n° {}, ou des relevés suivants si ce montant est négatif. Aucun versement n'est dû.",
            invoice.source.statement_number
        ),
    }
}

fn party(x: &mut Xml, party: &Party) {
    x.leaf("ram:Name", &party.name); // BT-27, BT-44
    x.open("ram:SpecifiedLegalOrganization");
    // BT-30, BT-47: 0002 is the SIRENE scheme (ISO 6523); Chorus Pro identifies by SIRET.
    x.leaf_with("ram:ID", "schemeID=\"0002\"", &party.siret);
    x.close("ram:SpecifiedLegalOrganization");
    x.open("ram:PostalTradeAddress"); // BG-5, BG-8
    for (name, value) in [
        ("ram:PostcodeCode", &party.postcode),
        ("ram:LineOne", &party.address),
        ("ram:CityName", &party.city),
    ] {
        if !value.is_empty() {
            x.leaf(name, value);
        }
    }
    x.leaf("ram:CountryID", "FR");
    x.close("ram:PostalTradeAddress");
}

fn siren(siret: &str) -> &str {
    siret.get(..9).unwrap_or(siret)
}

/// (BT-118 category, BT-119 rate): E at 0 for an exempt venue, S at its rate.
fn category(tax: &Tax) -> (&'static str, String) {
    match tax {
        Tax::Exempt { .. } => ("E", "0".to_owned()),
        Tax::Standard { rate_basis_points } => ("S", percent(*rate_basis_points)),
    }
}

/// 2000 → "20", 550 → "5.5", 210 → "2.1".
pub fn percent(basis_points: i32) -> String {
    let whole = basis_points / 100;
    match basis_points % 100 {
        0 => whole.to_string(),
        hundredths if hundredths % 10 == 0 => format!("{whole}.{}", hundredths / 10),
        hundredths => format!("{whole}.{hundredths:02}"),
    }
}

/// Cents as a decimal amount: 2000 → "20.00", -5 → "-0.05".
pub fn amount(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

/// A price in ten-thousandths of a euro, with 2 decimals when exact, else 4.
fn price(e4: i64) -> String {
    if e4 % 100 == 0 {
        amount(e4 / 100)
    } else {
        format!("{}.{:04}", e4 / 10_000, e4 % 10_000)
    }
}

/// A small writer of indented XML; text is escaped.
#[derive(Default)]
struct Xml {
    out: String,
    depth: usize,
}

impl Xml {
    fn raw(&mut self, text: &str) {
        self.out.push_str(text);
    }

    fn indent(&mut self) {
        for _ in 0..=self.depth {
            self.out.push_str("  ");
        }
    }

    fn open(&mut self, name: &str) {
        self.indent();
        let _ = writeln!(self.out, "<{name}>");
        self.depth += 1;
    }

    fn close(&mut self, name: &str) {
        self.depth -= 1;
        self.indent();
        let _ = writeln!(self.out, "</{name}>");
    }

    fn leaf(&mut self, name: &str, text: &str) {
        self.leaf_with(name, "", text);
    }

    fn leaf_with(&mut self, name: &str, attributes: &str, text: &str) {
        self.indent();
        let space = if attributes.is_empty() { "" } else { " " };
        let _ = writeln!(
            self.out,
            "<{name}{space}{attributes}>{}</{name}>",
            escape(text)
        );
    }

    /// A date in format 102 (CCYYMMDD).
    fn date(&mut self, name: &str, date: NaiveDate) {
        self.leaf_with(name, "format=\"102\"", &date.format("%Y%m%d").to_string());
    }
}

/// Text as XML character data: the five special characters escaped, and
/// control characters XML 1.0 forbids left out.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_the_schema_wants() {
        assert_eq!(amount(2000), "20.00");
        assert_eq!(amount(-5), "-0.05");
        assert_eq!(amount(0), "0.00");
        assert_eq!(price(200_000), "20.00");
        assert_eq!(price(166_667), "16.6667");
        assert_eq!(percent(2000), "20");
        assert_eq!(percent(550), "5.5");
        assert_eq!(percent(210), "2.1");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("A&B <c> \"d\" 'e'\u{1}"),
            "A&amp;B &lt;c&gt; &quot;d&quot; &apos;e&apos;"
        );
    }
}
