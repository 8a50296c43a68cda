//! The route table: every route, and the roles it accepts.

use crate::auth::Role;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed (health checks, public keys).
    Public,
    /// A valid token of one of these roles.
    Roles(&'static [Role]),
}

/// One entry of the route table.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: &'static str,
    /// The path as registered with the router (`{param}` syntax).
    pub path: &'static str,
    pub access: Access,
}

const ADMIN: &[Role] = &[Role::Admin];
const ANY_ROLE: &[Role] = &Role::ALL;

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
];
