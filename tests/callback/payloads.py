"""The vendors' documented example webhook payloads, as their documentation shows them.

Only the ids that tie an event to the message the tests sent are the ones the fakes answered
when sending (each noted where it differs from the documented example).
"""

from __future__ import annotations

from typing import Any

# Postmark, https://postmarkapp.com/developer/webhooks/delivery-webhook,
# .../bounce-webhook, .../spam-complaint-webhook, .../open-tracking-webhook,
# .../click-webhook. MessageID as in the documented examples (the fake answers it).
POSTMARK_MESSAGE_ID = "883953f4-6105-42a2-a16a-77a8eac79483"

POSTMARK_DELIVERY: dict[str, Any] = {
    "MessageID": POSTMARK_MESSAGE_ID,
    "Recipient": "john@example.com",
    "DeliveredAt": "2019-11-05T16:33:54.9070259Z",
    "Details": "Test delivery webhook details",
    "Tag": "welcome-email",
    "ServerID": 23,
    "Metadata": {"a_key": "a_value", "b_key": "b_value"},
    "RecordType": "Delivery",
    "MessageStream": "outbound",
}

POSTMARK_BOUNCE: dict[str, Any] = {
    "RecordType": "Bounce",
    "MessageStream": "outbound",
    "ID": 4323372036854775807,
    "Type": "HardBounce",
    "TypeCode": 1,
    "Name": "Hard bounce",
    "Tag": "Test",
    "MessageID": POSTMARK_MESSAGE_ID,
    "Metadata": {"a_key": "a_value", "b_key": "b_value"},
    "ServerID": 23,
    "Description": "The server was unable to deliver your message (ex: unknown user, mailbox "
    "not found).",
    "Details": "Test bounce details",
    "Email": "john@example.com",
    "From": "sender@example.com",
    "BouncedAt": "2019-11-05T16:33:54.9070259Z",
    "DumpAvailable": True,
    "Inactive": True,
    "CanActivate": True,
    "Subject": "Test subject",
    "Content": "<Full dump of bounce>",
}

POSTMARK_SPAM_COMPLAINT: dict[str, Any] = {
    "RecordType": "SpamComplaint",
    "MessageStream": "outbound",
    "ID": 42,
    "Type": "SpamComplaint",
    "TypeCode": 512,
    "Name": "Spam complaint",
    "Tag": "Test",
    "MessageID": POSTMARK_MESSAGE_ID,
    "Metadata": {"a_key": "a_value", "b_key": "b_value"},
    "ServerID": 1234,
    "Description": "",
    "Details": "Test spam complaint details",
    "Email": "john@example.com",
    "From": "sender@example.com",
    "BouncedAt": "2019-11-05T16:33:54.9070259Z",
    "DumpAvailable": True,
    "Inactive": True,
    "CanActivate": False,
    "Subject": "Test subject",
    "Content": "<Abuse report dump>",
}

POSTMARK_OPEN: dict[str, Any] = {
    "RecordType": "Open",
    "MessageStream": "outbound",
    "Metadata": {"example": "value", "example_2": "value"},
    "FirstOpen": True,
    "Recipient": "john@example.com",
    "MessageID": POSTMARK_MESSAGE_ID,
    "ReceivedAt": "2019-11-05T16:33:54.9070259Z",
    "Platform": "WebMail",
    "ReadSeconds": 5,
    "Tag": "welcome-email",
    "UserAgent": "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/45.0.2454.101 Safari/537.36",
    "OS": {"Name": "OS X 10.7 Lion", "Family": "OS X 10", "Company": "Apple Computer, Inc."},
    "Client": {"Name": "Chrome 35.0.1916.153", "Family": "Chrome", "Company": "Google"},
    "Geo": {
        "IP": "188.2.95.4",
        "City": "Novi Sad",
        "Country": "Serbia",
        "CountryISOCode": "RS",
        "Region": "Autonomna Pokrajina Vojvodina",
        "RegionISOCode": "VO",
        "Zip": "21000",
        "Coords": "45.2517,19.8369",
    },
}

POSTMARK_CLICK: dict[str, Any] = {
    "RecordType": "Click",
    "MessageStream": "outbound",
    "Metadata": {"example": "value", "example_2": "value"},
    "Recipient": "john@example.com",
    "MessageID": POSTMARK_MESSAGE_ID,
    "ReceivedAt": "2017-10-25T15:21:11.0000000Z",
    "Platform": "Desktop",
    "ClickLocation": "HTML",
    "OriginalLink": "https://example.com",
    "Tag": "welcome-email",
    "UserAgent": "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/45.0.2454.101 Safari/537.36",
    "OS": {"Name": "OS X 10.7 Lion", "Family": "OS X 10", "Company": "Apple Computer, Inc."},
    "Client": {"Name": "Chrome 35.0.1916.153", "Family": "Chrome", "Company": "Google"},
    "Geo": {"IP": "188.2.95.4", "City": "Novi Sad", "Country": "Serbia"},
}

# Mailgun, https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-payloads
# (the `event-data` of each event; the signature is computed by the tests). The message-id
# header is the one the fake answered when sending.
MAILGUN_MESSAGE_ID = "20130503182626.18666.16540@sandbox.mailgun.org"

MAILGUN_DELIVERED: dict[str, Any] = {
    "id": "CPgfbmQMTCKtHW6uIWtuVe",
    "timestamp": 1521472262.908181,
    "log-level": "info",
    "event": "delivered",
    "delivery-status": {
        "tls": True,
        "mx-host": "smtp-in.example.com",
        "code": 250,
        "description": "",
        "session-seconds": 0.4331989288330078,
        "utf8": True,
        "attempt-no": 1,
        "message": "OK",
        "certificate-verified": True,
    },
    "flags": {
        "is-routed": False,
        "is-authenticated": True,
        "is-system-test": False,
        "is-test-mode": False,
    },
    "envelope": {
        "transport": "smtp",
        "sender": "bob@sandbox.mailgun.org",
        "sending-ip": "209.61.154.250",
        "targets": "alice@example.com",
    },
    "message": {
        "headers": {
            "to": "Alice <alice@example.com>",
            "message-id": MAILGUN_MESSAGE_ID,
            "from": "Bob <bob@sandbox.mailgun.org>",
            "subject": "Test delivered webhook",
        },
        "attachments": [],
        "size": 111,
    },
    "recipient": "alice@example.com",
    "recipient-domain": "example.com",
    "storage": {
        "url": "https://se.api.mailgun.net/v3/domains/sandbox.mailgun.org/messages/message_key",
        "key": "message_key",
    },
    "campaigns": [],
    "tags": ["my_tag_1", "my_tag_2"],
    "user-variables": {"my_var_1": "Mailgun Variable #1", "my-var-2": "awesome"},
}

MAILGUN_FAILED_PERMANENT: dict[str, Any] = {
    "id": "G9Bn5sl1TC6nu79C8C0bwg",
    "timestamp": 1521233195.375624,
    "log-level": "error",
    "event": "failed",
    "severity": "permanent",
    "reason": "bounce",
    "delivery-status": {
        "attempt-no": 1,
        "message": "",
        "code": 605,
        "description": "Not delivering to previously bounced address",
        "session-seconds": 0.0,
    },
    "flags": {
        "is-routed": False,
        "is-authenticated": True,
        "is-system-test": False,
        "is-test-mode": False,
    },
    "envelope": {
        "sender": "bob@sandbox.mailgun.org",
        "transport": "smtp",
        "targets": "alice@example.com",
    },
    "message": {
        "headers": {
            "to": "Alice <alice@example.com>",
            "message-id": MAILGUN_MESSAGE_ID,
            "from": "Bob <bob@sandbox.mailgun.org>",
            "subject": "Test permanent_fail webhook",
        },
        "attachments": [],
        "size": 111,
    },
    "recipient": "alice@example.com",
    "recipient-domain": "example.com",
    "storage": {
        "url": "https://se.api.mailgun.net/v3/domains/sandbox.mailgun.org/messages/message_key",
        "key": "message_key",
    },
    "campaigns": [],
    "tags": ["my_tag_1", "my_tag_2"],
    "user-variables": {"my_var_1": "Mailgun Variable #1", "my-var-2": "awesome"},
}

MAILGUN_FAILED_TEMPORARY: dict[str, Any] = {
    **MAILGUN_FAILED_PERMANENT,
    "id": "Fs7-5t81S2ym5Rx5PcI0Fw",
    "severity": "temporary",
    "reason": "generic",
    "log-level": "warn",
    "delivery-status": {
        "attempt-no": 1,
        "message": "4.2.2 The email account that you tried to reach is over quota.",
        "code": 452,
        "description": "",
        "session-seconds": 1.0,
        "retry-seconds": 600,
    },
}

MAILGUN_OPENED: dict[str, Any] = {
    "id": "Ase7i2zsRYeDXztHGENqRA",
    "timestamp": 1521243339.873676,
    "log-level": "info",
    "event": "opened",
    "message": {"headers": {"message-id": MAILGUN_MESSAGE_ID}},
    "recipient": "alice@example.com",
    "recipient-domain": "example.com",
    "ip": "50.56.129.169",
    "geolocation": {"country": "US", "region": "CA", "city": "San Francisco"},
    "client-info": {
        "client-os": "Linux",
        "device-type": "desktop",
        "client-name": "Chrome",
        "client-type": "browser",
        "user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.31 (KHTML, like Gecko) "
        "Chrome/26.0.1410.43 Safari/537.31",
    },
    "campaigns": [],
    "tags": ["my_tag_1", "my_tag_2"],
    "user-variables": {"my_var_1": "Mailgun Variable #1", "my-var-2": "awesome"},
}

MAILGUN_CLICKED: dict[str, Any] = {
    **MAILGUN_OPENED,
    "id": "Ase7i2zsRYeDXztHGENqRA-click",
    "event": "clicked",
    "url": "https://documentation.mailgun.com/en/latest/user_manual.html#tracking-clicks",
}

MAILGUN_COMPLAINED: dict[str, Any] = {
    "id": "-Agny091SquKnsrW2NEKUA",
    "timestamp": 1521233123.501324,
    "log-level": "warn",
    "event": "complained",
    "envelope": {"sending-ip": "173.193.210.33"},
    "flags": {"is-test-mode": False},
    "message": {
        "headers": {
            "to": "Alice <alice@example.com>",
            "message-id": MAILGUN_MESSAGE_ID,
            "from": "Bob <bob@sandbox.mailgun.org>",
            "subject": "Test complained webhook",
        },
        "attachments": [],
        "size": 111,
    },
    "recipient": "alice@example.com",
    "campaigns": [],
    "tags": ["my_tag_1", "my_tag_2"],
    "user-variables": {"my_var_1": "Mailgun Variable #1", "my-var-2": "awesome"},
}

# Resend, https://resend.com/docs/dashboard/webhooks/event-types. email_id is the one the
# fake answered when sending.
RESEND_EMAIL_ID = "56761188-7520-42d8-8898-ff6fc54ce618"


def resend_event(kind: str, **data: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "created_at": "2024-11-22T23:41:12.126Z",
        "data": {
            "broadcast_id": "8b146471-e88e-4322-86af-016cd36fd216",
            "created_at": "2024-11-22T23:41:11.894719+00:00",
            "email_id": RESEND_EMAIL_ID,
            "from": "Acme <onboarding@resend.dev>",
            "to": ["delivered@resend.dev"],
            "subject": "Sending this example",
            "tags": {"category": "confirm_email"},
            **data,
        },
    }


RESEND_DELIVERED = resend_event("email.delivered")
RESEND_OPENED = resend_event("email.opened")
RESEND_CLICKED = resend_event(
    "email.clicked",
    click={
        "ipAddress": "122.115.53.11",
        "link": "https://resend.com",
        "timestamp": "2024-11-24T05:00:57.163Z",
        "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.3.1 Safari/605.1.15",
    },
)
RESEND_BOUNCED = resend_event(
    "email.bounced",
    bounce={
        "message": "The recipient's email address is on the suppression list because it has a "
        "recent history of producing hard bounces.",
        "subType": "Suppressed",
        "type": "Permanent",
    },
)
RESEND_COMPLAINED = resend_event("email.complained")
RESEND_DELIVERY_DELAYED = resend_event("email.delivery_delayed")

# Vonage SMS API delivery receipt,
# https://developer.vonage.com/en/messaging/sms/guides/delivery-receipts. messageId is the one
# the fake answered when sending.
VONAGE_MESSAGE_ID = "0A0000000123ABCD1"


def vonage_receipt(status: str, err_code: str = "0", **extra: str) -> dict[str, str]:
    return {
        "msisdn": "447700900000",
        "to": "AcmeInc",
        "network-code": "12345",
        "messageId": VONAGE_MESSAGE_ID,
        "price": "0.03330000",
        "status": status,
        "scts": "2001011400",
        "err-code": err_code,
        "api-key": "abcd1234",
        "message-timestamp": "2020-01-01 12:00:00",
        **extra,
    }


# Amazon SES notifications,
# https://docs.aws.amazon.com/ses/latest/dg/notification-examples.html, and events,
# https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-examples.html
# (`Message` of the SNS notification). mail.messageId is the one the fake answered when
# sending.
SES_MESSAGE_ID = "0000014644fe5ef6-9a483358-9170-4cb4-a269-f5dcdf415321-000000"
SES_MAIL: dict[str, Any] = {
    "timestamp": "2016-01-27T14:59:38.237Z",
    "source": "john@example.com",
    "sourceArn": "arn:aws:ses:us-east-1:888888888888:identity/example.com",
    "sourceIp": "127.0.3.0",
    "sendingAccountId": "123456789012",
    "callerIdentity": "IAM_user_or_role_name",
    "messageId": SES_MESSAGE_ID,
    "destination": ["jane@example.com", "mary@example.com", "richard@example.com"],
    "headersTruncated": False,
    "headers": [
        {"name": "From", "value": '"John Doe" <john@example.com>'},
        {"name": "To", "value": '"Jane Doe" <jane@example.com>'},
        {"name": "Subject", "value": "Hello"},
    ],
    "commonHeaders": {
        "from": ["John Doe <john@example.com>"],
        "date": "Wed, 27 Jan 2016 14:05:45 +0000",
        "to": ["Jane Doe <jane@example.com>"],
        "messageId": "custom-message-ID",
        "subject": "Hello",
    },
}

SES_BOUNCE: dict[str, Any] = {
    "notificationType": "Bounce",
    "bounce": {
        "bounceType": "Permanent",
        "reportingMTA": "dns; email.example.com",
        "bouncedRecipients": [
            {
                "emailAddress": "jane@example.com",
                "status": "5.1.1",
                "action": "failed",
                "diagnosticCode": "smtp; 550 5.1.1 <jane@example.com>... User",
            }
        ],
        "bounceSubType": "General",
        "timestamp": "2016-01-27T14:59:38.237Z",
        "feedbackId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000",
        "remoteMtaIp": "127.0.2.0",
    },
    "mail": SES_MAIL,
}

SES_COMPLAINT: dict[str, Any] = {
    "notificationType": "Complaint",
    "complaint": {
        "userAgent": "AnyCompany Feedback Loop (V0.01)",
        "complainedRecipients": [{"emailAddress": "richard@example.com"}],
        "complaintFeedbackType": "abuse",
        "arrivalDate": "2016-01-27T14:59:38.237Z",
        "timestamp": "2016-01-27T14:59:38.237Z",
        "feedbackId": "000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000",
    },
    "mail": SES_MAIL,
}

SES_DELIVERY: dict[str, Any] = {
    "notificationType": "Delivery",
    "mail": SES_MAIL,
    "delivery": {
        "timestamp": "2014-05-28T22:41:01.184Z",
        "processingTimeMillis": 546,
        "recipients": ["success@simulator.amazonses.com"],
        "smtpResponse": "250 ok:  Message 64111812 accepted",
        "reportingMTA": "a8-70.smtp-out.amazonses.com",
        "remoteMtaIp": "127.0.2.0",
    },
}

SES_OPEN: dict[str, Any] = {
    "eventType": "Open",
    "mail": SES_MAIL,
    "open": {
        "ipAddress": "192.0.2.1",
        "timestamp": "2017-08-09T22:00:19.652Z",
        "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 10_3_3 like Mac OS X) "
        "AppleWebKit/603.3.8 (KHTML, like Gecko) Mobile/14G60",
    },
}

SES_CLICK: dict[str, Any] = {
    "eventType": "Click",
    "click": {
        "ipAddress": "192.0.2.1",
        "link": "http://docs.aws.amazon.com/ses/latest/DeveloperGuide/send-email-smtp.html",
        "linkTags": {"samplekey0": ["samplevalue0"], "samplekey1": ["samplevalue1"]},
        "timestamp": "2017-08-09T23:51:25.570Z",
        "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
        "like Gecko) Chrome/60.0.3112.90 Safari/537.36",
    },
    "mail": SES_MAIL,
}
