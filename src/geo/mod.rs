//! French geography and company identifiers, as pure lookups with no I/O.
//!
//! - [`Communes`]: the current communes and the municipal arrondissements of
//!   Paris, Lyon and Marseille, with their département and postcodes, from the
//!   INSEE data shipped in `data/communes.tsv` (see `docs/communes.md`). The file
//!   is compiled into the binary and parsed once, on first use, by
//!   [`Communes::shared`].
//! - [`Departement`]: a département code known to that data ("01".."95" with
//!   Corsica as "2A"/"2B", and "971".."976").
//! - [`validate_siret`]: the SIRET check digits, La Poste's exception included.
//!
//! The API contract's rules live here: an organisation's `postcode` must be one
//! of its `commune_code`'s postcodes ([`Communes::commune_with_postcode`]); a
//! beneficiary's `commune_code` is needed only when the postcode spans communes
//! of several départements ([`Communes::departement_for`]).

mod communes;
mod departement;
mod siret;

pub use communes::{Commune, Communes, DataError, GeoError, GeoField};
pub use departement::{is_departement_code, Departement};
pub use siret::{validate_siret, Siret, SiretError, LA_POSTE_SIREN};
