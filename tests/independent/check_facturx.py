"""Checks Factur-X PDFs with validators passnum does not write:

- PyPI factur-x (Akretion): facturx-pdfextractxml finds the embedded XML,
  which passes the XSD of the profile it declares, and the profile is EN 16931;
- the EN 16931 Schematron (the XSLT the factur-x package ships), run with
  saxonche: no failed assert, and rules did fire;
- pikepdf: PDF/A-3 identification, the fx: XMP properties, /AF with its
  AFRelationship, the embedded file's subtype, an output intent.

Usage: check_facturx.py FILE.pdf [FILE.pdf ...]. When FILE.xml sits beside
FILE.pdf, the embedded XML must be those very bytes. Prints one line per
file and check; exits 1 if anything fails. Runs offline.
"""

import os
import subprocess
import sys
import tempfile

import facturx
import pikepdf
from lxml import etree
from saxonche import PySaxonProcessor

FACTURX_DIR = os.path.dirname(facturx.__file__)
SCHEMATRON = os.path.join(
    FACTURX_DIR, "xsd_and_schematron", "facturx-en16931", "FACTUR-X_EN16931.xslt"
)
SVRL = "http://purl.oclc.org/dsdl/svrl"
FX = "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"


def extract_with_factur_x(pdf_path):
    """The CLI of the factur-x package: finds the XML and checks its XSD.
    Its schematron check needs a Saxon server; ours runs below instead."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "extracted.xml")
        cli = os.path.join(os.path.dirname(sys.executable), "facturx-pdfextractxml")
        run = subprocess.run(
            [cli, "-ds", pdf_path, out], capture_output=True, text=True, check=False
        )
        if run.returncode != 0 or not os.path.exists(out):
            raise AssertionError(f"facturx-pdfextractxml failed: {run.stderr.strip()}")
        with open(out, "rb") as f:
            xml = f.read()
    level = facturx.get_level(etree.fromstring(xml))
    if level != "en16931":
        raise AssertionError(f"the XML declares profile {level!r}, not en16931")
    # The XSD of EN 16931 itself, named rather than detected.
    facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    return xml


def schematron(processor, executable, xml):
    """Failed asserts of the EN 16931 Schematron, and how many rules fired."""
    document = processor.parse_xml(xml_text=xml.decode("utf-8"))
    report = executable.transform_to_string(xdm_node=document)
    svrl = etree.fromstring(report.encode("utf-8"))
    failed = [
        (a.get("id") or a.get("test"), " ".join(a.findtext(f"{{{SVRL}}}text", "").split()))
        for a in svrl.iter(f"{{{SVRL}}}failed-assert")
        if a.get("flag", "fatal") != "warning"
    ]
    fired = len(list(svrl.iter(f"{{{SVRL}}}fired-rule")))
    return failed, fired


def pdf_checks(pdf_path):
    """PDF/A-3 and Factur-X structure, read with pikepdf."""
    problems = []
    with pikepdf.open(pdf_path) as pdf:
        meta = pdf.open_metadata()
        if meta.get("pdfaid:part") != "3":
            problems.append(f"pdfaid:part is {meta.get('pdfaid:part')!r}, not 3")
        if meta.get("pdfaid:conformance") not in ("B", "U", "A"):
            problems.append(f"pdfaid:conformance is {meta.get('pdfaid:conformance')!r}")
        expected = {
            "DocumentType": "INVOICE",
            "DocumentFileName": "factur-x.xml",
            "Version": "1.0",
            "ConformanceLevel": "EN 16931",
        }
        for name, value in expected.items():
            found = meta.get(f"{{{FX}}}{name}")
            if found != value:
                problems.append(f"fx:{name} is {found!r}, not {value!r}")
        xmp = bytes(pdf.Root.Metadata.read_bytes()).decode("utf-8")
        if FX not in xmp or "pdfaExtension:schemas" not in xmp:
            problems.append("no PDF/A extension schema declares the fx: properties")
        files = list(pdf.Root.get("/AF", []))
        specs = [f for f in files if str(f.get("/F", "")) == "factur-x.xml"]
        if not specs:
            problems.append("/AF does not list factur-x.xml")
        for spec in specs:
            relationship = str(spec.get("/AFRelationship", ""))
            if relationship not in ("/Data", "/Alternative"):
                problems.append(f"AFRelationship is {relationship!r}")
            if str(spec.get("/UF", "")) != "factur-x.xml":
                problems.append("the file specification has no /UF factur-x.xml")
            stream = spec.EF.F
            if str(stream.get("/Subtype", "")) != "/text/xml":
                problems.append(f"embedded file subtype is {stream.get('/Subtype')!r}")
            if "/ModDate" not in stream.get("/Params", {}):
                problems.append("embedded file has no /Params /ModDate")
        names = pdf.Root.get("/Names", {}).get("/EmbeddedFiles", {}).get("/Names", [])
        if "factur-x.xml" not in [str(n) for n in list(names)[::2]]:
            problems.append("factur-x.xml is not in the EmbeddedFiles name tree")
        intents = list(pdf.Root.get("/OutputIntents", []))
        if not any(
            str(i.get("/S")) == "/GTS_PDFA1" and "/DestOutputProfile" in i for i in intents
        ):
            problems.append("no PDF/A output intent with an ICC profile")
        embedded = specs[0].EF.F.read_bytes() if specs else b""
    return problems, embedded


def main(paths):
    if not paths:
        print("usage: check_facturx.py FILE.pdf [FILE.pdf ...]", file=sys.stderr)
        return 2
    failures = 0
    with PySaxonProcessor(license=False) as processor:
        compiler = processor.new_xslt30_processor()
        executable = compiler.compile_stylesheet(stylesheet_file=SCHEMATRON)
        for path in paths:
            name = os.path.basename(path)
            try:
                xml = extract_with_factur_x(path)
                print(f"ok   {name}: factur-x found factur-x.xml, XSD EN 16931 passes")
            except Exception as e:  # noqa: BLE001 - every failure is reported
                print(f"FAIL {name}: factur-x: {e}")
                failures += 1
                continue
            failed, fired = schematron(processor, executable, xml)
            if failed or fired == 0:
                failures += 1
                print(f"FAIL {name}: Schematron EN 16931: {len(failed)} failed asserts, {fired} rules fired")
                for rule, text in failed:
                    print(f"       {rule}: {text}")
            else:
                print(f"ok   {name}: Schematron EN 16931: 0 failed asserts, {fired} rules fired")
            problems, embedded = pdf_checks(path)
            beside = os.path.splitext(path)[0] + ".xml"
            if os.path.exists(beside):
                with open(beside, "rb") as f:
                    if f.read() != embedded:
                        problems.append(f"the embedded XML differs from {os.path.basename(beside)}")
            if problems:
                failures += 1
                for problem in problems:
                    print(f"FAIL {name}: pikepdf: {problem}")
            else:
                print(f"ok   {name}: pikepdf: PDF/A-3, fx: XMP, /AF Data, text/xml, output intent")
    print(f"{len(paths) * 3 - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
