//! Email over SMTP (lettre): the printable book sent to a beneficiary.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// How long the mail server has to accept a message.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("no mail server is configured (set PASSNUM_SMTP_URL, e.g. smtps://user:pass@smtp.example.org)")]
    NotConfigured,
    #[error("PASSNUM_SMTP_URL is not valid: {0}")]
    BadUrl(String),
    #[error("the address {0:?} cannot receive mail")]
    BadAddress(String),
    #[error("the message cannot be built: {0}")]
    Build(String),
    #[error("the mail server did not accept the message: {0}")]
    Smtp(String),
}

/// The mail server, from `PASSNUM_SMTP_URL`: `smtp://host:port` (plain, for
/// a local relay), `smtp://host?tls=required` (STARTTLS) or `smtps://host`
/// (TLS), with optional `user:password@`.
#[derive(Clone)]
pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(smtp_url: Option<&str>, from: &str) -> Result<Self, MailError> {
        let from: Mailbox = from
            .parse()
            .map_err(|_| MailError::BadAddress(from.to_owned()))?;
        let transport = match smtp_url {
            None => None,
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| MailError::BadUrl(e.to_string()))?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build(),
            ),
        };
        Ok(Mailer { transport, from })
    }

    /// Sends the book as a PDF attachment with a short message in plain French.
    pub async fn send_book(
        &self,
        to: &str,
        program_name: &str,
        pdf: Vec<u8>,
        page_url: Option<&str>,
    ) -> Result<(), MailError> {
        let transport = self.transport.as_ref().ok_or(MailError::NotConfigured)?;
        let to: Mailbox = to
            .parse()
            .map_err(|_| MailError::BadAddress(to.to_owned()))?;
        let page = match page_url {
            Some(url) => format!(
                "Vos coupons sont aussi sur votre téléphone, à cette adresse :\n{url}\n\
                 Ne la donnez à personne : vos coupons sont dessus.\n\n"
            ),
            None => String::new(),
        };
        let text = format!(
            "Bonjour,\n\n\
             Voici votre pass numérique : « {program_name} ».\n\n\
             Le carnet est dans le fichier joint (PDF).\n\
             Imprimez-le, ou montrez-le sur votre téléphone.\n\
             Chaque coupon donne droit à un atelier gratuit.\n\
             La liste des lieux est sur la première page.\n\n\
             {page}\
             Bonne découverte !\n\n\
             Ce message est envoyé automatiquement : merci de ne pas y répondre.\n\
             Votre adresse e-mail est effacée dès l'envoi.\n"
        );
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject("Votre pass numérique")
            .multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain(text))
                    .singlepart(
                        Attachment::new("pass-numerique.pdf".to_owned()).body(
                            pdf,
                            ContentType::parse("application/pdf")
                                .map_err(|e| MailError::Build(e.to_string()))?,
                        ),
                    ),
            )
            .map_err(|e| MailError::Build(e.to_string()))?;
        transport
            .send(message)
            .await
            .map_err(|e| MailError::Smtp(e.to_string()))?;
        Ok(())
    }
}
