//! API key scopes: what a key may do. Chosen when the key is created; a key used outside its
//! scopes is refused (403 `insufficient_scope`). Login tokens are not scoped.

use std::fmt;

use serde::Serialize;

/// One thing an API key may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum Scope {
    /// `POST /api/send`, `GET /api/send`.
    #[serde(rename = "messages:send")]
    MessagesSend,
    /// `GET /api/messages`, `GET /api/messages/{id}`.
    #[serde(rename = "messages:read")]
    MessagesRead,
    /// Every `/api/webhooks` route.
    #[serde(rename = "webhooks:manage")]
    WebhooksManage,
    /// `GET /api/whatsapp/status`, `GET /api/whatsapp/qr`.
    #[serde(rename = "session:read")]
    SessionRead,
}

impl Scope {
    /// Every scope, in the order lists show them; also what a key gets when its creator names
    /// none (and what keys made before scopes existed were given).
    pub const ALL: [Scope; 4] = [
        Scope::MessagesSend,
        Scope::MessagesRead,
        Scope::WebhooksManage,
        Scope::SessionRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::MessagesSend => "messages:send",
            Scope::MessagesRead => "messages:read",
            Scope::WebhooksManage => "webhooks:manage",
            Scope::SessionRead => "session:read",
        }
    }

    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == name)
    }

    /// The names of every scope, for error messages.
    pub fn names() -> String {
        Scope::ALL.map(Scope::as_str).join(", ")
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scopes of one key, as stored (`text[]`): names this node does not know are dropped, so
/// a key can only lose rights by a downgrade, never gain them.
pub fn from_stored(names: &[String]) -> Vec<Scope> {
    Scope::ALL
        .into_iter()
        .filter(|scope| names.iter().any(|name| name == scope.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_dropped() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::parse("messages:write"), None);
        assert_eq!(
            from_stored(&[
                "session:read".into(),
                "admin".into(),
                "messages:send".into()
            ]),
            vec![Scope::MessagesSend, Scope::SessionRead]
        );
    }
}
