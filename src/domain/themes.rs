//! The fixed catalogue of workshop themes, with their French labels.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Theme {
    #[schema(example = "online_procedures")]
    pub code: &'static str,
    #[schema(example = "Faire ses démarches administratives en ligne")]
    pub label: &'static str,
}

pub const THEMES: &[Theme] = &[
    Theme {
        code: "first_steps",
        label: "Premiers pas avec un ordinateur, une tablette ou un smartphone",
    },
    Theme {
        code: "internet",
        label: "Naviguer et chercher sur internet",
    },
    Theme {
        code: "email",
        label: "Envoyer et recevoir des e-mails",
    },
    Theme {
        code: "online_procedures",
        label: "Faire ses démarches administratives en ligne",
    },
    Theme {
        code: "health",
        label: "Sa santé en ligne (Ameli, prise de rendez-vous)",
    },
    Theme {
        code: "employment",
        label: "Chercher un emploi, écrire son CV",
    },
    Theme {
        code: "online_safety",
        label: "Se protéger en ligne (arnaques, mots de passe)",
    },
    Theme {
        code: "money",
        label: "Gérer son argent en ligne (banque, paiements)",
    },
    Theme {
        code: "staying_in_touch",
        label: "Garder le lien avec ses proches (appels vidéo, messages)",
    },
    Theme {
        code: "school",
        label: "Suivre la scolarité de ses enfants en ligne",
    },
    Theme {
        code: "documents",
        label: "Ranger ses photos et ses documents",
    },
];

pub fn is_theme(code: &str) -> bool {
    THEMES.iter().any(|t| t.code == code)
}

pub fn label(code: &str) -> Option<&'static str> {
    THEMES.iter().find(|t| t.code == code).map(|t| t.label)
}
