//! The Factur-X part of the PDF that krilla cannot write itself: the XMP
//! properties that name the embedded XML (`fx:DocumentType`,
//! `fx:DocumentFileName`, `fx:Version`, `fx:ConformanceLevel`) and the
//! PDF/A extension schema that declares them. krilla writes a PDF/A-3b file
//! with the XML attached (`/AF`, `AFRelationship`, the output intent); lopdf
//! reads it back, and the XMP stream is replaced by krilla's own with these
//! added. Nothing else of the file changes.

use lopdf::{Document, Object};

use crate::domain::invoices::document::Kind;

/// The name the Factur-X specification gives the embedded XML.
pub const XML_FILE_NAME: &str = "factur-x.xml";

const NAMESPACE: &str = "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#";

#[derive(Debug, thiserror::Error)]
pub enum FacturXError {
    #[error("the PDF could not be read back: {0}")]
    Read(String),
    #[error("the PDF has no XMP metadata to extend")]
    NoMetadata,
    #[error("the PDF could not be written: {0}")]
    Write(String),
}

/// `pdf` with the Factur-X XMP properties for a document of `kind`.
pub fn add_xmp(pdf: &[u8], kind: Kind) -> Result<Vec<u8>, FacturXError> {
    let mut document = Document::load_mem(pdf).map_err(|e| FacturXError::Read(e.to_string()))?;
    let metadata = document
        .catalog()
        .and_then(|catalog| catalog.get(b"Metadata"))
        .and_then(Object::as_reference)
        .map_err(|_| FacturXError::NoMetadata)?;
    let stream = document
        .get_object_mut(metadata)
        .and_then(Object::as_stream_mut)
        .map_err(|_| FacturXError::NoMetadata)?;
    let xmp = String::from_utf8(stream.content.clone()).map_err(|_| FacturXError::NoMetadata)?;
    stream.set_content(extend(&xmp, kind)?.into_bytes());
    let mut out = Vec::with_capacity(pdf.len() + 4096);
    document
        .save_to(&mut out)
        .map_err(|e| FacturXError::Write(e.to_string()))?;
    Ok(out)
}

/// The XMP packet with the `fx:` properties and their schema description:
/// the schema goes into krilla's `pdfaExtension:schemas` bag when there is
/// one (a property may appear once), else in a description of its own.
fn extend(xmp: &str, kind: Kind) -> Result<String, FacturXError> {
    // Both kinds are INVOICE: a credit note is an invoice of type 381 (Factur-X 1.0, 7.2.2).
    let document_type = match kind {
        Kind::Invoice | Kind::CreditNote => "INVOICE",
    };
    let properties = format!(
        "<rdf:Description rdf:about=\"\" xmlns:fx=\"{NAMESPACE}\">\
         <fx:DocumentType>{document_type}</fx:DocumentType>\
         <fx:DocumentFileName>{XML_FILE_NAME}</fx:DocumentFileName>\
         <fx:Version>1.0</fx:Version>\
         <fx:ConformanceLevel>EN 16931</fx:ConformanceLevel>\
         </rdf:Description>"
    );
    let property = |name: &str, description: &str| {
        format!(
            "<rdf:li rdf:parseType=\"Resource\">\
             <pdfaProperty:name>{name}</pdfaProperty:name>\
             <pdfaProperty:valueType>Text</pdfaProperty:valueType>\
             <pdfaProperty:category>external</pdfaProperty:category>\
             <pdfaProperty:description>{description}</pdfaProperty:description>\
             </rdf:li>"
        )
    };
    let schema = format!(
        "<rdf:li rdf:parseType=\"Resource\">\
         <pdfaSchema:schema>Factur-X PDFA Extension Schema</pdfaSchema:schema>\
         <pdfaSchema:namespaceURI>{NAMESPACE}</pdfaSchema:namespaceURI>\
         <pdfaSchema:prefix>fx</pdfaSchema:prefix>\
         <pdfaSchema:property><rdf:Seq>{}{}{}{}</rdf:Seq></pdfaSchema:property>\
         </rdf:li>",
        property("DocumentFileName", "The name of the embedded XML document"),
        property(
            "DocumentType",
            "The type of the hybrid document in capital letters, e.g. INVOICE or ORDER"
        ),
        property(
            "Version",
            "The actual version of the standard applying to the embedded XML document"
        ),
        property(
            "ConformanceLevel",
            "The conformance level of the embedded XML document"
        ),
    );
    let end = xmp.rfind("</rdf:RDF>").ok_or(FacturXError::NoMetadata)?;
    let mut out = String::with_capacity(xmp.len() + properties.len() + schema.len() + 600);
    match bag_end(xmp) {
        Some(bag_end) if bag_end < end => {
            out.push_str(&xmp[..bag_end]);
            out.push_str(&schema);
            out.push_str(&xmp[bag_end..end]);
        }
        _ => {
            out.push_str(&xmp[..end]);
            out.push_str(
                "<rdf:Description rdf:about=\"\" \
                 xmlns:pdfaExtension=\"http://www.aiim.org/pdfa/ns/extension/\" \
                 xmlns:pdfaSchema=\"http://www.aiim.org/pdfa/ns/schema#\" \
                 xmlns:pdfaProperty=\"http://www.aiim.org/pdfa/ns/property#\">\
                 <pdfaExtension:schemas><rdf:Bag>",
            );
            out.push_str(&schema);
            out.push_str("</rdf:Bag></pdfaExtension:schemas></rdf:Description>");
        }
    }
    out.push_str(&properties);
    out.push_str(&xmp[end..]);
    Ok(out)
}

/// Where the bag of krilla's `pdfaExtension:schemas` closes, if it wrote one.
fn bag_end(xmp: &str) -> Option<usize> {
    let start = xmp.find("<pdfaExtension:schemas")?;
    let close = start + xmp[start..].find("</pdfaExtension:schemas>")?;
    xmp[start..close].rfind("</rdf:Bag>").map(|i| start + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_joins_an_existing_bag_and_the_properties_follow() {
        let xmp = "<x:xmpmeta><rdf:RDF><rdf:Description rdf:about=\"\"><pdfaExtension:schemas><rdf:Bag><rdf:li>pdfuaid</rdf:li></rdf:Bag></pdfaExtension:schemas></rdf:Description></rdf:RDF></x:xmpmeta>";
        let out = extend(xmp, Kind::Invoice).unwrap();
        assert_eq!(out.matches("<pdfaExtension:schemas").count(), 1);
        let bag = &out[out.find("<rdf:Bag>").unwrap()..out.find("</rdf:Bag>").unwrap()];
        assert!(bag.contains("<rdf:li>pdfuaid</rdf:li>") && bag.contains(NAMESPACE));
        assert!(out.contains("<fx:ConformanceLevel>EN 16931</fx:ConformanceLevel>"));
        assert!(out.ends_with("</rdf:RDF></x:xmpmeta>"));
    }

    #[test]
    fn without_a_bag_the_schema_gets_a_description_of_its_own() {
        let xmp = "<x:xmpmeta><rdf:RDF><rdf:Description rdf:about=\"\"/></rdf:RDF></x:xmpmeta>";
        let out = extend(xmp, Kind::CreditNote).unwrap();
        assert_eq!(out.matches("<pdfaExtension:schemas>").count(), 1);
        assert!(out.contains("<fx:DocumentType>INVOICE</fx:DocumentType>"));
        assert!(out.contains("<fx:DocumentFileName>factur-x.xml</fx:DocumentFileName>"));
    }
}
