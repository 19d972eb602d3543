"""Prints the messages of a maildir as JSON: recipients, subject, text and
attachments (base64), so the Rust tests can check what the SMTP server got."""

import base64
import email
import json
import mailbox
import sys
from email import policy


def main(path: str) -> None:
    out = []
    for key, raw in mailbox.Maildir(path, factory=None).items():
        message = email.message_from_bytes(raw.as_bytes(), policy=policy.default)
        attachments = []
        text = ""
        for part in message.walk():
            if part.get_content_disposition() == "attachment":
                attachments.append({
                    "filename": part.get_filename(),
                    "content_type": part.get_content_type(),
                    "base64": base64.b64encode(part.get_payload(decode=True)).decode(),
                })
            elif part.get_content_type() == "text/plain":
                text += part.get_content()
        out.append({"to": message["To"], "from": message["From"], "subject": message["Subject"],
                    "text": text, "attachments": attachments})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
