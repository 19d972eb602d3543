#!/usr/bin/env python3
"""Writes a national-standard file ("standard des lieux de médiation
numérique" 0.1, the columns of the standard's Exemple-valide.csv) of N
generated venues, valid against the schema: real communes with one of their
postcodes (data/communes.tsv), Luhn-valid SIRETs, values from the closed
lists. Generated, not real: for timing `passnum venues import` only.

    bench/venues_file.py N OUT.csv
"""
import csv
import random
import sys

SERVICES = [
    "Devenir autonome dans les démarches administratives",
    "Réaliser des démarches administratives avec un accompagnement",
    "Prendre en main un smartphone ou une tablette",
    "Prendre en main un ordinateur",
    "Utiliser le numérique au quotidien",
    "Accéder à une connexion internet",
    "Accéder à du matériel",
]
CONDITIONS = [
    "Gratuit : Je peux accéder gratuitement au lieu et à ses services",
    "Accepte le Pass numérique : Il est possible d'utiliser un Pass numérique pour accéder au lieu",
]
HEADER = ("id,pivot,nom,commune,code_postal,code_insee,adresse,complement_adresse,latitude,"
          "longitude,cle_ban,typologie,telephone,courriel,site_web,horaires,presentation_resume,"
          "presentation_detail,source,structure_parente,date_maj,services,publics_accueillis,"
          "conditions_acces,labels_nationaux,labels_autres,modalites_accompagnement,accessibilite,"
          "prise_rdv").split(",")


def luhn_ok(digits):
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def with_check_digit(prefix):
    for last in "0123456789":
        if luhn_ok(prefix + last):
            return prefix + last
    raise AssertionError


def siret(rng):
    siren = with_check_digit("".join(rng.choice("0123456789") for _ in range(8)))
    while siren.startswith("356000000"):
        siren = with_check_digit("".join(rng.choice("0123456789") for _ in range(8)))
    return with_check_digit(siren + "".join(rng.choice("0123456789") for _ in range(4)))


def main():
    count, out = int(sys.argv[1]), sys.argv[2]
    rng = random.Random(25)
    communes = []
    with open("data/communes.tsv", encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                continue
            code, _dep, postcodes, name = line.rstrip("\n").split("\t")
            if postcodes:
                communes.append((code, postcodes.split(",")[0].split(" ")[0], name))
    with open(out, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(HEADER)
        for i in range(count):
            code, postcode, name = rng.choice(communes)
            row = dict.fromkeys(HEADER, "")
            row.update({
                "id": f"lieu-{i:05d}",
                "pivot": siret(rng),
                "nom": f"Espace numérique {i} de {name}",
                "commune": name,
                "code_postal": postcode,
                "code_insee": code,
                "adresse": f"{rng.randint(1, 200)} rue de la République",
                "latitude": f"{rng.uniform(42.5, 50.9):.5f}",
                "longitude": f"{rng.uniform(-4.5, 7.9):.5f}",
                "telephone": "+33" + "".join(rng.choice("0123456789") for _ in range(9)),
                "horaires": "Mo-Fr 09:00-12:00,14:00-17:30",
                "date_maj": "2026-11-02",
                "services": ";".join(rng.sample(SERVICES, 3)),
                "conditions_acces": ";".join(rng.sample(CONDITIONS, rng.randint(1, 2))),
            })
            writer.writerow([row[h] for h in HEADER])


main()
