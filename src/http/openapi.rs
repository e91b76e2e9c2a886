//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! annotations and the types they take and answer, served at `GET /api/openapi.json`; and the
//! reference page at `GET /api/docs` that renders it, embedded in the binary like the dashboard.
//!
//! Errors every operation of a kind can answer (authentication, body checks, an unavailable
//! database) come from the shared filters, so they are added here by what an operation takes,
//! in the one `ErrorBody` shape, instead of in each annotation.

use std::sync::{Arc, LazyLock};

use utoipa::{
    Modify, OpenApi,
    openapi::{
        self, RefOr, Response, ResponseBuilder,
        path::ParameterIn,
        security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};
use warp::{Filter, http::HeaderValue};

use super::{
    account, admin, billing, dashboard, error::ErrorBody, health, keys, messages, metrics,
    password_reset, routing::Route, usage, webhooks, whatsapp, ws,
};
use crate::state::AppState;

const DOCS_HTML: &str = include_str!("../dashboard/api-docs.html");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "botwave",
        description = "Self-hosted, multi-user WhatsApp automation gateway. Every error is \
            `{\"error\": {\"code\", \"message\", \"field\"?}}`. Log in for a token (`POST \
            /api/auth/login`), or create an API key (`POST /api/keys`) for integrations.",
        license(name = "AGPL-3.0-or-later", identifier = "AGPL-3.0-or-later"),
    ),
    paths(
        health::liveness,
        health::readiness,
        metrics::scrape,
        account::register,
        account::login,
        account::me,
        account::change_password,
        password_reset::forgot,
        password_reset::reset,
        keys::create,
        keys::list,
        keys::change,
        keys::revoke,
        whatsapp::initialize,
        whatsapp::status,
        whatsapp::qr_code,
        whatsapp::pair_code,
        whatsapp::disconnect,
        messages::web_send,
        messages::api_send,
        messages::send_from_query,
        messages::list,
        messages::get,
        webhooks::create,
        webhooks::list,
        webhooks::get,
        webhooks::update,
        webhooks::delete,
        webhooks::rotate,
        webhooks::ping,
        webhooks::deliveries,
        webhooks::replay_one,
        webhooks::replay_all,
        webhooks::attempts,
        usage::usage,
        usage::plans,
        billing::checkout,
        billing::portal,
        billing::stripe_webhook,
        ws::upgrade,
        dashboard::index,
        dashboard::reset_page,
        dashboard::asset_file,
        dashboard::config,
        dashboard::demo_scan,
        spec,
        docs,
    ),
    // Schemas only parameters name are not collected from the operations.
    components(schemas(ErrorBody, messages::Direction, whatsapp::QrFormat)),
    modifiers(&SecuritySchemes, &SharedErrors),
    tags(
        (name = "account", description = "Registering, logging in, passwords"),
        (name = "api keys", description = "Keys for integrations"),
        (name = "whatsapp", description = "Linking the account's WhatsApp"),
        (name = "messages", description = "Sending, and the message log"),
        (name = "webhooks", description = "Endpoints that receive events, their deliveries and attempts"),
        (name = "plans", description = "Plans, quotas and usage; upgrading through Stripe"),
        (name = "events", description = "Live events over a websocket"),
        (name = "admin", description = "For administrators: accounts, sessions, analytics, audit log, cluster"),
        (name = "dashboard", description = "The web dashboard and what only it uses"),
        (name = "operations", description = "Health, readiness and metrics"),
        (name = "reference", description = "This document and its page"),
    ),
)]
struct ApiDoc;

/// The document, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    serde_json::to_string(&document()).unwrap_or_else(|error| {
        // Serialising plain data cannot fail; should it, say so rather than serve nothing.
        tracing::error!(%error, "cannot serialise the OpenAPI document");
        String::from("{}")
    })
});

/// The OpenAPI document of every operation the node serves.
pub fn document() -> openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    document.merge(admin::AdminApi::openapi());
    // Modifiers ran before the merge; the admin operations need the shared errors too.
    SharedErrors.modify(&mut document);
    document
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, document: &mut openapi::OpenApi) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A login token from /api/auth/login or /api/auth/register. Routes that \
                         take an API key also take it here, as `Authorization: Bearer bw_…`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Api-Key",
                "An API key from POST /api/keys (`bw_…`).",
            ))),
        );
        components.add_security_scheme(
            "api_key_query",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "api_key",
                "An API key in the URL, for GET /api/send only; prefer the header.",
            ))),
        );
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The node's `metrics.token`."))
                    .build(),
            ),
        );
    }
}

/// Adds the answers the shared filters give, to each operation that goes through them.
struct SharedErrors;

impl Modify for SharedErrors {
    fn modify(&self, document: &mut openapi::OpenApi) {
        for (path, item) in document.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                // A user's credentials: what the caller filters check (the metrics token is
                // checked by its route alone).
                let authenticated = operation.security.iter().flatten().any(|requirement| {
                    serde_json::to_value(requirement).is_ok_and(|names| {
                        ["bearer", "api_key", "api_key_query"]
                            .iter()
                            .any(|name| names.get(name).is_some())
                    })
                });
                let has_body = operation.request_body.is_some();
                let has_query = operation.parameters.iter().flatten().any(|parameter| {
                    matches!(
                        parameter.parameter_in,
                        ParameterIn::Query | ParameterIn::Header
                    )
                });
                let takes_api_key = operation.security.iter().flatten().any(|requirement| {
                    serde_json::to_value(requirement).is_ok_and(|names| {
                        ["api_key", "api_key_query"]
                            .iter()
                            .any(|name| names.get(name).is_some())
                    })
                });
                let mut shared = Vec::new();
                if authenticated {
                    shared.push(("401", "No credentials, or unknown, expired or revoked ones"));
                    shared.push((
                        "403",
                        if takes_api_key {
                            "`account_disabled`, `forbidden` (this operation takes another \
                             credential or role), or `insufficient_scope`: the API key lacks \
                             the scope this operation needs (named in `scope`)"
                        } else {
                            "`account_disabled`, or `forbidden`: this operation takes another \
                             credential or role"
                        },
                    ));
                    // Any request with an API key spends from the rate buckets, even one to
                    // an operation that then refuses keys.
                    operation
                        .responses
                        .responses
                        .entry("429".to_owned())
                        .or_insert_with(rate_limited_response);
                }
                if has_body {
                    shared.push((
                        "400",
                        "`malformed_json`, `invalid_body` or `validation_failed` (with `field`)",
                    ));
                    shared.push(("408", "`request_timeout`: the body did not arrive in time"));
                    shared.push(("413", "`payload_too_large`"));
                    shared.push((
                        "415",
                        "`unsupported_media_type`: send the body as application/json",
                    ));
                } else if has_query && authenticated {
                    shared.push(("400", "`validation_failed` (with `field`) or `bad_request`"));
                }
                if path.contains('{') {
                    shared.push(("404", "`not_found`"));
                }
                if authenticated || has_body {
                    shared.push((
                        "503",
                        "`unavailable` (the database) or `busy` (with `Retry-After`)",
                    ));
                }
                for (status, description) in shared {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error_response(description));
                }
            }
        }
    }
}

/// 429 `rate_limited`, with the headers that say when to come back.
fn rate_limited_response() -> RefOr<Response> {
    let header = |description: &str| {
        openapi::header::HeaderBuilder::new()
            .schema(openapi::ObjectBuilder::new().schema_type(openapi::schema::Type::Integer))
            .description(Some(description))
            .build()
    };
    RefOr::T(
        ResponseBuilder::new()
            .description(
                "`rate_limited`: an API key's request over the account's or the key's own \
                 request rate",
            )
            .header(
                "Retry-After",
                header("Seconds until a request passes again"),
            )
            .header("RateLimit-Limit", header("The size of the tightest bucket"))
            .header(
                "RateLimit-Remaining",
                header("Requests it still allows at once"),
            )
            .header("RateLimit-Reset", header("Seconds until it is full again"))
            .content(
                "application/json",
                openapi::ContentBuilder::new()
                    .schema(Some(openapi::Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                openapi::ContentBuilder::new()
                    .schema(Some(openapi::Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

pub fn routes(_state: &Arc<AppState>) -> Vec<Route> {
    vec![
        Route::new::<__path_spec>(|at| at.map(spec).boxed()),
        Route::new::<__path_docs>(|at| {
            at.and(warp::header::optional::<String>("if-none-match"))
                .map(docs)
                .boxed()
        }),
    ]
}

/// This document
#[utoipa::path(get, path = "/api/openapi.json", tag = "reference", operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object)))]
fn spec() -> warp::reply::Response {
    let mut response = warp::reply::Response::new(DOCUMENT.as_str().into());
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    response
}

/// The API reference page
///
/// Renders this document; served by the node, works without internet access.
#[utoipa::path(get, path = "/api/docs", tag = "reference", operation_id = "api_docs",
    responses(
        (status = 200, description = "The page", content_type = "text/html; charset=utf-8", body = String),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
    ))]
fn docs(etag: Option<String>) -> warp::reply::Response {
    dashboard::page(DOCS_HTML, etag.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_are_unique() {
        let document = document();
        let mut ids = Vec::new();
        for item in document.paths.paths.values() {
            for operation in [&item.get, &item.put, &item.post, &item.delete, &item.patch]
                .into_iter()
                .flatten()
            {
                ids.extend(operation.operation_id.clone());
            }
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "an operation id repeats");
    }
}
