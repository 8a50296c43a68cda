//! The route table: every route, and the roles it accepts.

use crate::auth::Role;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed (health checks, public keys).
    Public,
    /// A valid token of one of these roles.
    Roles(&'static [Role]),
    /// A valid token of one of these roles, or no token at all: the
    /// handler then asks for another proof (the certificate's QR, for a
    /// holder reporting a side effect).
    RolesOrProof(&'static [Role]),
}

/// One entry of the route table.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// The HTTP method (`GET` also answers `HEAD`).
    pub method: &'static str,
    /// The path as registered with the router (`{param}` syntax).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

const ADMIN: &[Role] = &[Role::Admin];
/// Who may issue and read certificates (facility tokens only their own).
const ISSUERS: &[Role] = &[Role::Admin, Role::Issuer, Role::Facility];
/// Who may revoke, suspend and reinstate.
const STATUS_CHANGERS: &[Role] = &[Role::Admin, Role::Issuer];
const ANY_ROLE: &[Role] = &Role::ALL;
/// Who may read the full statistics (small cells included).
const STATS_READERS: &[Role] = &[Role::Admin, Role::Controller, Role::Monitoring];
/// Who may file side effects and ratings with a token.
const FEEDBACK_FILERS: &[Role] = &[Role::Admin, Role::Facility, Role::Recipient];
/// Who may read side-effect reports (pharmacovigilance).
const FEEDBACK_READERS: &[Role] = &[Role::Admin, Role::Monitoring];
/// Who may see the outbox (masked contacts, no names).
const OPERATORS: &[Role] = &[Role::Admin, Role::Monitoring];
/// Who may read certificates: issuers, facilities (their own), and
/// recipients (their own).
const READERS: &[Role] = &[Role::Admin, Role::Issuer, Role::Facility, Role::Recipient];

/// Who may read vaccines and programmes: every role (a facility app, a
/// recipient choosing a programme, a verifier naming a vaccine).
const REGISTRY_READERS: &[Role] = &Role::ALL;
/// Who may change the registry.
const CONTROLLERS: &[Role] = &[Role::Admin, Role::Controller];
/// Who may read facilities (facility-bound tokens only their own).
const FACILITY_READERS: &[Role] = &[
    Role::Admin,
    Role::Controller,
    Role::Monitoring,
    Role::Issuer,
    Role::Facility,
    Role::FacilityAdmin,
    Role::Vaccinator,
];
/// Who may read vaccinators (facility tokens only their facility's).
const VACCINATOR_READERS: &[Role] = &[
    Role::Admin,
    Role::Controller,
    Role::Monitoring,
    Role::Facility,
    Role::FacilityAdmin,
];

/// The routes of one registry kind: list, create, read, replace, delete,
/// history.
macro_rules! registry_routes {
    ($base:literal, $readers:expr) => {
        [
            RouteSpec {
                method: "GET",
                path: $base,
                access: Access::Roles($readers),
            },
            RouteSpec {
                method: "POST",
                path: $base,
                access: Access::Roles(CONTROLLERS),
            },
            RouteSpec {
                method: "GET",
                path: concat!($base, "/{code}"),
                access: Access::Roles($readers),
            },
            RouteSpec {
                method: "PUT",
                path: concat!($base, "/{code}"),
                access: Access::Roles(CONTROLLERS),
            },
            RouteSpec {
                method: "DELETE",
                path: concat!($base, "/{code}"),
                access: Access::Roles(CONTROLLERS),
            },
            RouteSpec {
                method: "GET",
                path: concat!($base, "/{code}/history"),
                access: Access::Roles($readers),
            },
        ]
    };
}

/// Who may read enrolments (personal data): the registry's operators and
/// the facility they are enrolled at.
const ENROLMENT_READERS: &[Role] = &[
    Role::Admin,
    Role::Controller,
    Role::Facility,
    Role::FacilityAdmin,
];

/// Who may enrol a person through `POST /v1/enrolments`: the registry's
/// operators, and facility staff registering a walk-in at their facility.
const ENROLLERS: &[Role] = &[
    Role::Admin,
    Role::Controller,
    Role::Facility,
    Role::FacilityAdmin,
];

const ENROLMENT_ROUTES: [RouteSpec; 6] = {
    let mut routes = registry_routes!("/v1/enrolments", ENROLMENT_READERS);
    routes[1] = RouteSpec {
        method: "POST",
        path: "/v1/enrolments",
        access: Access::Roles(ENROLLERS),
    };
    routes
};
const VACCINE_ROUTES: [RouteSpec; 6] = registry_routes!("/v1/vaccines", REGISTRY_READERS);
const PROGRAMME_ROUTES: [RouteSpec; 6] = registry_routes!("/v1/programmes", REGISTRY_READERS);
const FACILITY_ROUTES: [RouteSpec; 6] = registry_routes!("/v1/facilities", FACILITY_READERS);
const VACCINATOR_ROUTES: [RouteSpec; 6] = registry_routes!("/v1/vaccinators", VACCINATOR_READERS);

/// Who may book, cancel and move appointments (facility tokens at their
/// own facilities, recipients for the people under their number).
const BOOKERS: &[Role] = &[
    Role::Admin,
    Role::Controller,
    Role::Facility,
    Role::FacilityAdmin,
    Role::Recipient,
];
const RECIPIENTS: &[Role] = &[Role::Recipient];
/// Who may read an appointment: those who book it, and the vaccinators.
const APPOINTMENT_READERS: &[Role] = &[
    Role::Admin,
    Role::Controller,
    Role::Facility,
    Role::FacilityAdmin,
    Role::Vaccinator,
    Role::Recipient,
];
/// Who may read a facility's day (names): its staff and the operators.
const DAY_READERS: &[Role] = &[
    Role::Admin,
    Role::Controller,
    Role::Facility,
    Role::FacilityAdmin,
    Role::Vaccinator,
];

/// Who may record a vaccination (facility-bound ones at their own
/// facilities).
const RECORDERS: &[Role] = &[
    Role::Admin,
    Role::Facility,
    Role::FacilityAdmin,
    Role::Vaccinator,
];

/// Who may read a programme's progress (counts, no personal data).
const PROGRESS_READERS: &[Role] = &[Role::Admin, Role::Controller, Role::Monitoring];

const APPOINTMENT_ROUTES: [RouteSpec; 14] = [
    // Signing in: anyone may ask for a code for a number, and trade it.
    RouteSpec {
        method: "POST",
        path: "/v1/recipients/otp",
        access: Access::Public,
    },
    RouteSpec {
        method: "POST",
        path: "/v1/recipients/token",
        access: Access::Public,
    },
    RouteSpec {
        method: "POST",
        path: "/v1/recipients/enrolments",
        access: Access::Roles(RECIPIENTS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/recipients/me",
        access: Access::Roles(RECIPIENTS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/programmes/{code}/progress",
        access: Access::Roles(PROGRESS_READERS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/facility/sync",
        access: Access::Roles(RECORDERS),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/vaccinations",
        access: Access::Roles(RECORDERS),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/facility/sync",
        access: Access::Roles(RECORDERS),
    },
    // Slots are not personal data: a recipient app shows them too.
    RouteSpec {
        method: "GET",
        path: "/v1/facilities/{code}/slots",
        access: Access::Roles(REGISTRY_READERS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/facilities/{code}/day",
        access: Access::Roles(DAY_READERS),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/appointments",
        access: Access::Roles(BOOKERS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/appointments/{id}",
        access: Access::Roles(APPOINTMENT_READERS),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/appointments/{id}/cancel",
        access: Access::Roles(BOOKERS),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/appointments/{id}/reschedule",
        access: Access::Roles(BOOKERS),
    },
];

/// The registry's routes.
const REGISTRY_ROUTES: [&[RouteSpec]; 8] = [
    &APPOINTMENT_ROUTES,
    &ENROLMENT_ROUTES,
    &TOKEN_ROUTES,
    &UPLOAD_ROUTES,
    &VACCINE_ROUTES,
    &PROGRAMME_ROUTES,
    &FACILITY_ROUTES,
    &VACCINATOR_ROUTES,
];

/// Every route the service answers: [`ROUTES`] and the registry's.
pub fn all() -> impl Iterator<Item = &'static RouteSpec> {
    ROUTES
        .iter()
        .chain(REGISTRY_ROUTES.iter().flat_map(|r| r.iter()))
}

/// The access rule of `method` on the route template `path` (`HEAD` takes
/// `GET`'s), if the table has one.
pub fn access(method: &str, path: &str) -> Option<Access> {
    let find = |m: &str| all().find(|r| r.path == path && r.method == m);
    find(method)
        .or_else(|| (method == "HEAD").then(|| find("GET")).flatten())
        .map(|r| r.access)
}

/// Who may make, list and revoke API tokens (a controller only facility
/// staff's).
const TOKEN_MAKERS: &[Role] = &[Role::Admin, Role::Controller];

const TOKEN_ROUTES: [RouteSpec; 4] = [
    RouteSpec {
        method: "GET",
        path: "/v1/tokens",
        access: Access::Roles(TOKEN_MAKERS),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/tokens",
        access: Access::Roles(TOKEN_MAKERS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/tokens/{id}",
        access: Access::Roles(TOKEN_MAKERS),
    },
    RouteSpec {
        method: "DELETE",
        path: "/v1/tokens/{id}",
        access: Access::Roles(TOKEN_MAKERS),
    },
];

/// Who may read upload reports.
const UPLOAD_READERS: &[Role] = &[Role::Admin, Role::Controller, Role::Monitoring];

const UPLOAD_ROUTES: [RouteSpec; 5] = [
    RouteSpec {
        method: "GET",
        path: "/v1/uploads",
        access: Access::Roles(UPLOAD_READERS),
    },
    // `{id}` is the kind (`facilities`, `vaccinators`) when posting.
    RouteSpec {
        method: "POST",
        path: "/v1/uploads/{id}",
        access: Access::Roles(CONTROLLERS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/uploads/{id}",
        access: Access::Roles(UPLOAD_READERS),
    },
    // The refused rows hold what the file held (names, identity numbers):
    // for those who upload, not for monitoring.
    RouteSpec {
        method: "GET",
        path: "/v1/uploads/{id}/errors.csv",
        access: Access::Roles(CONTROLLERS),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/programmes/{code}/facilities",
        access: Access::Roles(CONTROLLERS),
    },
];

/// Every route the service answers. The auth middleware refuses a request
/// whose route is missing here, and a test checks the router and this table
/// agree.
pub const ROUTES: &[RouteSpec] = &[
    RouteSpec {
        method: "GET",
        path: "/healthz",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/readyz",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/.well-known/did.json",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/.well-known/jwks.json",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/.well-known/crl/{file}",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/v1/formats",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/v1/formats/eu-dcc/revocations",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/v1/whoami",
        access: Access::Roles(ANY_ROLE),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/plugins",
        access: Access::Roles(ADMIN),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/plugins/reload",
        access: Access::Roles(ADMIN),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/keys/rotate",
        access: Access::Roles(ADMIN),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/certificates",
        access: Access::Roles(ISSUERS),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/certificates/batch",
        access: Access::Roles(ISSUERS),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/certificates/import",
        access: Access::Roles(ISSUERS),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/certificates/lookup",
        access: Access::Roles(READERS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/credentials",
        access: Access::Roles(ISSUERS),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/credentials/{type}",
        access: Access::Roles(ISSUERS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/certificates/{id}",
        access: Access::Roles(READERS),
    },
    RouteSpec {
        method: "PUT",
        path: "/v1/certificates/{id}",
        access: Access::Roles(ISSUERS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/certificates/{id}/history",
        access: Access::Roles(READERS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/certificates/{id}/formats",
        access: Access::Roles(READERS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/certificates/{id}/formats/{format}",
        access: Access::Roles(READERS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/certificates/{id}/formats/{format}/{file}",
        access: Access::Roles(READERS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/certificates/{id}/distribution",
        access: Access::Roles(ISSUERS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/outbox",
        access: Access::Roles(OPERATORS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/events/stream",
        access: Access::Roles(OPERATORS),
    },
    RouteSpec {
        method: "GET",
        path: "/openapi.json",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/verify",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/feedback/{id}",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/dashboard",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/sw.js",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/pages/{file}",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/metrics",
        access: Access::Roles(OPERATORS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/stats",
        access: Access::Roles(STATS_READERS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/stats/public",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/v1/feedback/form",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/v1/feedback/reports",
        access: Access::Roles(FEEDBACK_READERS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/feedback/reports.csv",
        access: Access::Roles(FEEDBACK_READERS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/feedback/reports/{id}",
        access: Access::Roles(FEEDBACK_READERS),
    },
    // A recipient's or facility's token, an admin's, or no token with the
    // certificate's QR as proof of holding it (checked by the handler).
    RouteSpec {
        method: "POST",
        path: "/v1/certificates/{id}/feedback",
        access: Access::RolesOrProof(FEEDBACK_FILERS),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/certificates/{id}/rating",
        access: Access::RolesOrProof(FEEDBACK_FILERS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/certificates/{id}/{file}",
        access: Access::Roles(READERS),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/certificates/{id}/revoke",
        access: Access::Roles(STATUS_CHANGERS),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/certificates/{id}/suspend",
        access: Access::Roles(STATUS_CHANGERS),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/certificates/{id}/reinstate",
        access: Access::Roles(STATUS_CHANGERS),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/status/{list}",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/v1/contexts",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/v1/contexts/{name}",
        access: Access::Public,
    },
    RouteSpec {
        method: "POST",
        path: "/v1/verify",
        access: Access::Public,
    },
    RouteSpec {
        method: "POST",
        path: "/v1/verify/batch",
        access: Access::Public,
    },
    RouteSpec {
        method: "POST",
        path: "/divoc/api/v1/certify",
        access: Access::Roles(ISSUERS),
    },
    RouteSpec {
        method: "PUT",
        path: "/divoc/api/v1/certificate",
        access: Access::Roles(ISSUERS),
    },
    RouteSpec {
        method: "DELETE",
        path: "/divoc/api/v1/certificates/{code}",
        access: Access::Roles(STATUS_CHANGERS),
    },
    RouteSpec {
        method: "GET",
        path: "/divoc/api/v1/certificates/{code}/{file}",
        access: Access::Roles(ISSUERS),
    },
    RouteSpec {
        method: "POST",
        path: "/divoc/api/v1/certificate/revoked",
        access: Access::Public,
    },
    RouteSpec {
        method: "POST",
        path: "/cert/api/certificate/revoked",
        access: Access::Public,
    },
    RouteSpec {
        method: "HEAD",
        path: "/cert/api/certificate/{code}",
        access: Access::Roles(ISSUERS),
    },
    RouteSpec {
        method: "GET",
        path: "/cert/api/certificatePDF/{code}",
        access: Access::Roles(ISSUERS),
    },
];
