//! Built-in English texts for every template the host sends, so a fresh
//! install delivers readable e-mail with no template configured. The
//! operator's `templates.<template>.<language>` replaces one of them whole.
//!
//! Variables per template (README.md has the table): the host's
//! host/certificates/src/distribution.rs (`certificate-issued`),
//! host/rollout/src/{otp,vaccination,activation}.rs (`otp`,
//! `dose-reminder`, `facility-programme-updated`) and
//! host/feedback/src/service.rs (`aefi-serious`). Variables the host may
//! leave empty are avoided or labelled: `latest` (a reminder may have no
//! end) is not used, `recipient-name` (empty for sign-in codes and alerts)
//! only where the host always fills it, and `daily-rate` (none set) after a
//! label that says what blank means.

/// One template's texts in one language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    pub template: &'static str,
    pub subject: &'static str,
    pub text: &'static str,
    pub html: Option<&'static str>,
}

/// The language of the built-in texts.
pub const LANGUAGE: &str = "en";

/// What the plugin says without configuration.
pub const BUILTIN: &[Builtin] = &[
    Builtin {
        template: "certificate-issued",
        subject: "Your {program} vaccination certificate (dose {dose})",
        text: "Dear {recipient-name},

your {program} vaccination certificate for dose {dose} has been issued.

View or download it: {certificate-url}

The certificate's QR code is attached; a verifier scans it. The printable \
certificate (certificate.pdf) is attached too, where the certificate has one.

This message was sent automatically; please do not reply to it.
",
        html: Some(
            "<!DOCTYPE html>
<html><body>
<p>Dear {recipient-name},</p>
<p>your {program} vaccination certificate for dose {dose} has been issued.</p>
<p><a href=\"{certificate-url}\">View or download your certificate</a></p>
<p>The certificate's QR code is attached; a verifier scans it. The printable \
certificate (certificate.pdf) is attached too, where the certificate has one.</p>
<p>This message was sent automatically; please do not reply to it.</p>
</body></html>
",
        ),
    },
    Builtin {
        template: "otp",
        // The code stays out of the subject: subjects show on lock screens
        // and in notification previews.
        subject: "Your DIVOC sign-in code",
        text: "{code} is your DIVOC sign-in code. It expires in {minutes} minutes.

Do not share it with anyone. If you did not ask for it, ignore this message.
",
        html: None,
    },
    Builtin {
        template: "dose-reminder",
        subject: "Dose {dose} of {programme} is due from {earliest}",
        text: "Dear {recipient-name},

dose {dose} of {programme} is due from {earliest} at {facility}.

Your enrolment number: {enrolment}
",
        html: None,
    },
    Builtin {
        template: "aefi-serious",
        subject: "Serious AEFI report {report}",
        text: "A serious adverse event following immunization was reported.

Report: {report}
Severity: {severity}
Programme: {programme}
Vaccine: {vaccine}, batch {batch}, dose {dose}
Facility: {facility}, {district}
",
        html: None,
    },
    Builtin {
        template: "facility-programme-updated",
        subject: "{facility}: programme {programme} is now {status}",
        text: "Facility {facility}: programme {programme} is now {status}.
Daily rate (blank when none is set): {daily-rate}
",
        html: None,
    },
];

/// The built-in texts of `template`, if there are any.
pub fn builtin(template: &str) -> Option<&'static Builtin> {
    BUILTIN.iter().find(|b| b.template == template)
}
