//! `/journal`: the transparency log explained in plain French to venues and
//! funders, with the current checkpoint and how to check it themselves.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use maud::html;

use super::errors::PageError;
use super::layout;
use super::session::Session;
use crate::http::problem::ApiError;
use crate::log::store;
use crate::state::AppState;

pub async fn page(
    state: web::Data<AppState>,
    session: Option<Session>,
) -> Result<HttpResponse, PageError> {
    let mut conn = state.pool.get().await.map_err(ApiError::from)?;
    let checkpoint = store::checkpoint(&mut conn).await.map_err(ApiError::from)?;
    let origin = crate::log::sequencer::origin(&mut conn, &state.config.log_origin)
        .await
        .map_err(ApiError::from)?;
    let size = checkpoint
        .as_deref()
        .and_then(|c| c.lines().nth(1))
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    let base = &state.config.public_url;
    let content = html! {
        h1 { "Le journal public des paiements" }
        p {
            "Chaque atelier enregistré avec un coupon, chaque annulation, chaque contestation "
            "et chaque relevé clos est inscrit, dans l'ordre, dans un journal public que "
            "personne ne peut réécrire sans que cela se voie, pas même l'opérateur du service."
        }
        h2 { "À quoi cela sert" }
        ul {
            li { "Un lieu de médiation peut prouver chaque atelier qu'il a fait, même si l'opérateur disparaît." }
            li { "Un financeur peut vérifier qu'aucun atelier n'a été ajouté, retiré ou modifié après coup." }
            li { "Le journal ne contient aucune donnée sur les bénéficiaires : ni nom, ni adresse, ni référence de dossier. Seulement le lieu (son SIRET), le coupon, le montant et la date." }
        }
        h2 { "Où en est le journal" }
        @match &checkpoint {
            Some(note) => {
                p { "Le journal compte " strong { (super::format::number(size as i64)) } " inscriptions. Voici son dernier point de contrôle signé :" }
                pre class="checkpoint" { (note) }
            }
            None => p { "Le journal est encore vide : aucun atelier n'a été enregistré." }
        }
        h2 { "Comment le vérifier soi-même" }
        p {
            "Le journal suit des formats publics (C2SP tlog-tiles, tlog-checkpoint et signed-note, "
            "ceux des journaux de transparence des certificats) : n'importe quel outil qui les connaît peut le lire. "
            "Avec l'outil de passnum :"
        }
        pre { "passnum log verify --url " (base) " --checkpoint journal.txt" }
        p {
            "La première fois, l'outil garde le point de contrôle dans le fichier. Les fois suivantes, "
            "il vérifie que le nouveau journal prolonge celui d'avant : si une inscription avait disparu ou changé, "
            "il le dit et s'arrête en erreur. Pour prouver qu'une inscription précise y figure :"
        }
        pre { "passnum log prove --url " (base) " --index 42" }
        p { "Les téléphones des lieux font cette vérification à chaque synchronisation et préviennent l'opérateur en cas d'anomalie." }
        h2 { "Les fichiers publics" }
        ul {
            li { a href="/log/checkpoint" { "/log/checkpoint" } " : le dernier point de contrôle signé" }
            li { a href="/log/key" { "/log/key" } " : la clé de vérification du journal (" code { (origin) } ")" }
            li { code { "/log/tile/…" } " : l'arbre de Merkle et les inscriptions, par paquets de 256" }
        }
    };
    Ok(layout::respond(
        StatusCode::OK,
        layout::page(session.as_ref(), "Journal public", content),
    ))
}
