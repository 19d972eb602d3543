//! The pages every French public service links from its footer: legal
//! notice, accessibility statement (RGAA), personal data. Public: no login
//! needed, and a logged-in user keeps their menu.

use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use maud::{html, Markup};

use super::errors::PageError;
use super::layout;
use super::session::Session;
use crate::db::schema::organisations;
use crate::domain::organisations::Organisation;
use crate::geo::Communes;
use crate::state::AppState;

/// The footer's links, in the order the footer shows them.
pub const FOOTER_LINKS: &[(&str, &str)] = &[
    ("/mentions-legales", "Mentions légales"),
    ("/accessibilite", "Accessibilité : non conforme"),
    ("/donnees-personnelles", "Données personnelles"),
];

/// When this accessibility statement was written, and the reference it follows.
const STATEMENT_DATE: &str = "3 décembre 2026";
const RGAA_VERSION: &str = "RGAA 4.1.2";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/mentions-legales").get(legal_notice))
        .service(web::resource("/accessibilite").get(accessibility))
        .service(web::resource("/donnees-personnelles").get(personal_data));
}

/// The organisation that runs the service: the operator's, the oldest if several.
async fn publisher(state: &AppState) -> Result<Option<Organisation>, PageError> {
    let mut conn = state.reader().await?;
    Ok(organisations::table
        .filter(organisations::kind.eq("operator"))
        .order(organisations::id)
        .select(Organisation::as_select())
        .first(&mut conn)
        .await
        .optional()?)
}

fn address_of(org: &Organisation) -> Option<String> {
    let commune = org
        .commune_code
        .as_deref()
        .and_then(|c| Communes::shared().commune(c))
        .map(|c| c.name().to_owned());
    let parts: Vec<String> = [
        org.address.clone(),
        match (org.postcode.clone(), commune) {
            (Some(p), Some(c)) => Some(format!("{p} {c}")),
            (p, c) => p.or(c),
        },
    ]
    .into_iter()
    .flatten()
    .filter(|s| !s.trim().is_empty())
    .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn contact(state: &AppState) -> Markup {
    html! { (state.config.privacy_contact) }
}

pub async fn legal_notice(
    state: web::Data<AppState>,
    session: Option<Session>,
) -> Result<HttpResponse, PageError> {
    let publisher = publisher(&state).await?;
    let content = html! {
        h1 { "Mentions légales" }
        h2 { "Éditeur du service" }
        @match &publisher {
            Some(org) => {
                p { strong { (org.name) } }
                dl.facts {
                    @if let Some(address) = address_of(org) { dt { "Adresse" } dd { (address) } }
                    @if let Some(siret) = &org.siret { dt { "SIRET" } dd { (siret) } }
                    @if let Some(phone) = &org.phone { dt { "Téléphone" } dd { (phone) } }
                }
            }
            None => p { "L'opérateur du service, qui l'administre pour les financeurs des programmes." },
        }
        p { "Les programmes sont financés et leurs lieux payés par les financeurs (collectivités, caisses, État) nommés sur chaque carnet." }
        h2 { "Contact" }
        p { "Pour toute question sur un carnet : " (contact(&state)) "." }
        h2 { "Hébergement" }
        p { "Le service est hébergé dans l'Union européenne, sur les serveurs choisis par l'éditeur ; aucune donnée n'est transférée hors de l'Union." }
        h2 { "Logiciel" }
        p { "Le service fonctionne avec passnum, un logiciel dont les coupons sont signés et vérifiables par tous avec les clés publiées sur " a href="/.well-known/jwks.json" { "/.well-known/jwks.json" } "." }
    };
    Ok(layout::ok(layout::page(
        session.as_ref(),
        "Mentions légales",
        content,
    )))
}

pub async fn accessibility(
    state: web::Data<AppState>,
    session: Option<Session>,
) -> Result<HttpResponse, PageError> {
    let publisher = publisher(&state).await?;
    let who = publisher
        .as_ref()
        .map_or("L'opérateur du service", |o| o.name.as_str());
    let content = html! {
        h1 { "Déclaration d'accessibilité" }
        p { (who) " s'engage à rendre le Pass numérique accessible, conformément à l'article 47 de la loi n° 2005-102 du 11 février 2005." }
        p { "Cette déclaration d'accessibilité s'applique au service en ligne du Pass numérique : les pages des prescripteurs, des lieux de médiation, des financeurs et de l'opérateur, et les carnets imprimables." }
        h2 { "État de conformité" }
        p { strong { "Le Pass numérique est non conforme avec le " (RGAA_VERSION) "." } " Aucun audit de conformité n'a encore été réalisé : en son absence, le service ne peut pas se déclarer conforme, même partiellement." }
        h2 { "Ce qui est vérifié" }
        ul {
            li { "Chaque page est contrôlée automatiquement, à chaque modification du logiciel, par l'outil axe-core (critères WCAG 2.2 niveaux A et AA), sur un écran de téléphone et d'ordinateur : aucune erreur grave n'est admise." }
            li { "Les pages fonctionnent sans JavaScript, sauf la page de scan des coupons ; tout se fait au clavier." }
            li { "Chaque QR code des carnets est accompagné d'un code à taper." }
            li { "Les graphiques de l'utilisation des programmes sont doublés d'un tableau de leurs valeurs." }
        }
        h2 { "Contenus non accessibles" }
        ul {
            li { "Le carnet au format PDF n'est pas encore balisé (PDF/UA) : un lecteur d'écran le lit mal. Le prescripteur peut lire les codes à taper du carnet sur sa page." }
        }
        h2 { "Établissement de cette déclaration" }
        p { "Cette déclaration a été établie le " (STATEMENT_DATE) "." }
        dl.facts {
            dt { "Technologies utilisées" } dd { "HTML, CSS, SVG, JavaScript (page de scan), PDF" }
            dt { "Outils de vérification" } dd { "axe-core dans Chromium ; lecture au clavier" }
        }
        h2 { "Retour d'information et contact" }
        p { "Si vous n'arrivez pas à accéder à un contenu ou à un service, contactez " (contact(&state)) " pour être orienté vers une alternative accessible ou obtenir le contenu sous une autre forme." }
        h2 { "Voies de recours" }
        p { "Si vous avez signalé un défaut d'accessibilité qui vous empêche d'accéder à un contenu ou à un service, et que vous n'avez pas obtenu de réponse satisfaisante, vous pouvez :" }
        ul {
            li { "écrire un message au Défenseur des droits (formulaire en ligne sur defenseurdesdroits.fr) ;" }
            li { "contacter le délégué du Défenseur des droits dans votre région ;" }
            li { "envoyer un courrier par la poste (gratuit, ne pas mettre de timbre) : Défenseur des droits, Libre réponse 71120, 75342 Paris CEDEX 07." }
        }
    };
    Ok(layout::ok(layout::page(
        session.as_ref(),
        "Déclaration d'accessibilité",
        content,
    )))
}

pub async fn personal_data(
    state: web::Data<AppState>,
    session: Option<Session>,
) -> Result<HttpResponse, PageError> {
    let content = html! {
        h1 { "Données personnelles" }
        p.lead { "Le Pass numérique ne connaît le nom d'aucun bénéficiaire." }
        h2 { "Qui en est responsable" }
        p { "Le financeur du programme et l'organisme qui remet le carnet, tous deux nommés sur le carnet, pour une mission d'intérêt public (article 6.1.e du RGPD). L'opérateur du service l'héberge et le sécurise pour eux." }
        h2 { "Ce qui est enregistré, et pour combien de temps" }
        div.table-wrap tabindex="0" role="region" aria-labelledby="donnees-titre" {
            table {
                caption #donnees-titre { "Les données du service" }
                thead { tr {
                    th scope="col" { "Qui" }
                    th scope="col" { "Données" }
                    th scope="col" { "Gardées" }
                } }
                tbody {
                    tr {
                        th scope="row" { "Bénéficiaire" }
                        td { "Le numéro de dossier choisi par le prescripteur (jamais le nom), le code postal, la commune si besoin" }
                        td { "12 mois après la fin de validité du carnet, puis effacés" }
                    }
                    tr {
                        th scope="row" { "Bénéficiaire, s'il le souhaite" }
                        td { "Son adresse e-mail, pour lui envoyer le carnet" }
                        td { "Effacée dès l'envoi" }
                    }
                    tr {
                        th scope="row" { "Ateliers" }
                        td { "Le lieu, la date, le thème et la durée de chaque atelier" }
                        td { "Le temps des obligations comptables du financeur ; sans donnée du bénéficiaire" }
                    }
                    tr {
                        th scope="row" { "Agents des organismes" }
                        td { "Adresse e-mail professionnelle, organisme, mot de passe chiffré, sessions de connexion" }
                        td { "Sessions : 12 heures au plus ; tentatives de connexion échouées : 24 heures" }
                    }
                }
            }
        }
        p { "Le lieu qui accepte un coupon ne voit ni l'identité ni le numéro de dossier du bénéficiaire. Aucune donnée ne quitte l'Union européenne. Le service ne dépose aucun cookie de mesure d'audience : seul un cookie de session, nécessaire à la connexion des agents." }
        h2 { "Vos droits" }
        p { "Vous pouvez demander à consulter, corriger ou effacer vos données, ou vous opposer à leur traitement, auprès de " (contact(&state)) " : comme le service ne connaît pas votre nom, c'est l'organisme qui vous a remis le carnet qui le retrouve par son numéro de dossier." }
        p { "Vous pouvez aussi adresser une réclamation à la CNIL (cnil.fr)." }
    };
    Ok(layout::ok(layout::page(
        session.as_ref(),
        "Données personnelles",
        content,
    )))
}
