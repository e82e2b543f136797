//! The OpenAPI 3.1 document of the HTTP API, served at `GET /api/openapi.json`.
//!
//! Every route is registered through `utoipa_axum::routes!` (see `server::routes`), so the
//! router and the document come from the same list. Schemas that exist only for the
//! document are here; decimals and `u64` numbers are strings in every response schema.
//! Every guarded operation also lists the shared error answers (401, 403, 404, 405, 413,
//! 415, 422: one `Error` shape) and the bearer scheme.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa::{OpenApi as _, ToSchema};

pub(super) use super::error::ApiError as ErrorBody;

/// `GET /readyz`.
#[derive(Serialize, ToSchema)]
pub(super) struct Readiness {
    /// All checks passed.
    ready: bool,
    /// `ok` or `unreachable`.
    database: String,
    /// `ok` or `not answering`.
    supervisor: String,
    /// `done` or `pending`.
    first_round: String,
}

/// A page of divergences, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct DivergencePage {
    /// Divergences.
    items: Vec<serde_json::Value>,
    /// Cursor of the next page (`null` on the last one).
    next_before: Option<i64>,
}

/// A list.
#[derive(Serialize, ToSchema)]
pub(super) struct Items {
    /// The items.
    items: Vec<serde_json::Value>,
}

/// An acknowledgement.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AckBody {
    /// Why the divergence needs no attention (required).
    #[schema(min_length = 1, max_length = 500)]
    note: String,
    /// Who (default `api`).
    #[schema(min_length = 1, max_length = 100)]
    by: Option<String>,
}

/// `POST /api/divergences/{id}/acknowledge`.
#[derive(Serialize, ToSchema)]
pub(super) struct Acknowledged {
    /// True.
    acknowledged: bool,
    id: i64,
    by: String,
    note: String,
}

/// Who cancels and why.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CancelBody {
    /// Who (default `api`).
    by: Option<String>,
    /// Why.
    reason: Option<String>,
}

/// An account as listed.
#[derive(Serialize, ToSchema)]
pub(super) struct AccountView {
    id: String,
    name: String,
    broker: String,
    enabled: bool,
    disabled_reason: Option<String>,
    created_at: String,
    updated_at: String,
}

/// Every account.
#[derive(Serialize, ToSchema)]
pub(super) struct AccountList {
    /// By id.
    items: Vec<AccountView>,
}

/// An account to add or update.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AccountInput {
    /// Account id (1 to 128 bytes).
    #[schema(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9_.:-]+$")]
    id: String,
    /// `sim`, `metaapi` or `mt5_export`.
    #[schema(pattern = "^(sim|metaapi|mt5_export)$")]
    broker: String,
    /// Display name (default: the id).
    name: Option<String>,
}

/// One account or an array of them.
#[derive(Serialize, ToSchema)]
#[allow(
    dead_code,
    reason = "a schema of the document only; the body is parsed by input"
)]
#[serde(untagged)]
pub(super) enum AccountsBody {
    /// One.
    One(AccountInput),
    /// Many, in one transaction.
    Many(Vec<AccountInput>),
}

/// `DELETE /api/accounts/{id}`.
#[derive(Serialize, ToSchema)]
pub(super) struct Removed {
    id: String,
    /// Always false.
    enabled: bool,
    /// False when it was already removed.
    changed: bool,
}

/// `POST /api/accounts/{id}/enable`.
#[derive(Serialize, ToSchema)]
pub(super) struct Enabled {
    id: String,
    enabled: bool,
}

// Decimals are positive, at most 6 integer and 8 fraction digits, as strings; u64 values
// are strings of digits (JSON numbers are accepted too).

/// `buy` or `sell`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(
    dead_code,
    reason = "a schema of the document only; the body is parsed by input"
)]
pub(super) enum SideDoc {
    /// Buy.
    Buy,
    /// Sell.
    Sell,
}

/// A trade as the bot sends it (the trade files' format, plus `version`). Numbers may be
/// JSON numbers or strings and are read exactly; unknown fields are refused.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TradeInput {
    /// The bot's trade id, unique within the account.
    #[schema(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9_.:-]+$")]
    id: String,
    /// Symbol as the bot spells it.
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9_.#-]+$")]
    symbol: String,
    /// `buy` or `sell`.
    side: SideDoc,
    /// Lots, a positive decimal.
    #[schema(
        example = "0.10",
        pattern = "^(0\\.[0-9]{0,7}[1-9]|[1-9][0-9]{0,5}(\\.[0-9]{1,8})?)$"
    )]
    volume: String,
    /// Expected entry price, a positive decimal.
    #[schema(
        example = "1.08500",
        pattern = "^(0\\.[0-9]{0,7}[1-9]|[1-9][0-9]{0,5}(\\.[0-9]{1,8})?)$"
    )]
    entry_price: String,
    /// Stop loss.
    #[schema(pattern = "^(0\\.[0-9]{0,7}[1-9]|[1-9][0-9]{0,5}(\\.[0-9]{1,8})?)$")]
    sl: Option<String>,
    /// Take profit.
    #[schema(pattern = "^(0\\.[0-9]{0,7}[1-9]|[1-9][0-9]{0,5}(\\.[0-9]{1,8})?)$")]
    tp: Option<String>,
    /// Broker ticket, 0 to 2^64 − 1.
    #[schema(pattern = "^[0-9]{1,19}$")]
    ticket: Option<String>,
    /// Client id sent with the order.
    #[schema(max_length = 128, pattern = r"^[A-Za-z0-9_.:-]*$")]
    client_id: Option<String>,
    /// When the bot opened it (RFC 3339).
    #[schema(format = DateTime)]
    opened_at: Option<String>,
    /// The bot's version of the trade, 0 to 2^64 − 1: lower than the stored one is stale.
    #[schema(pattern = "^[0-9]{1,19}$")]
    version: Option<String>,
}

/// The optional body of a close.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CloseBody {
    /// The bot's version of the close, 0 to 2^64 − 1.
    #[schema(pattern = "^[0-9]{1,19}$")]
    version: Option<String>,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "mt5-reconciler",
        description = "Status, divergences, alerts, accounts and the bot's trades. \
            Reads take the read or the write token, writes only the write token; \
            without tokens (loopback only) Host and Origin must be loopback."
    ),
    components(schemas(ErrorBody)),
    security(("bearer" = []))
)]
struct ApiDoc;

/// The document's starting point: info, the shared schemas, the bearer scheme.
pub(super) fn base() -> OpenApi {
    let mut doc = ApiDoc::openapi();
    if let Some(components) = doc.components.as_mut() {
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
    doc
}

/// The error answers every guarded operation may give, with the one error shape.
const SHARED_ERRORS: [(&str, &str); 7] = [
    ("401", "No valid bearer token"),
    (
        "403",
        "The read token on a write, or (without tokens) a foreign Host or Origin",
    ),
    ("404", "No such account, trade or alert"),
    ("405", "Method not allowed on this path"),
    ("413", "Body larger than 16 MiB"),
    ("415", "Body not application/json"),
    (
        "422",
        "Invalid input: names the field, the index and the value",
    ),
];

/// Adds [`SHARED_ERRORS`] to every operation that needs a token (all but `/healthz` and
/// the dashboard's static files), and the 400 of operations with parameters or a body.
pub(super) fn finish(mut doc: OpenApi) -> OpenApi {
    let error = |what: &str| {
        ResponseBuilder::new()
            .description(what)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Error")))
                    .build(),
            )
            .build()
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let open = path == "/healthz"
            || path == "/"
            || path.starts_with("/accounts/")
            || path.starts_with("/assets/");
        if open {
            continue;
        }
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
        ];
        for op in ops.into_iter().flatten() {
            for (code, what) in SHARED_ERRORS {
                op.responses
                    .responses
                    .entry(code.to_owned())
                    .or_insert_with(|| error(what).into());
            }
            op.responses
                .responses
                .entry("400".to_owned())
                .or_insert_with(|| error("Malformed request: bad JSON or parameter").into());
        }
    }
    doc
}

/// The document as JSON, built once.
pub(super) fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        super::server::document()
            .to_pretty_json()
            .unwrap_or_default()
    })
}

/// `GET /api/openapi.json`: this document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "status",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub(super) async fn serve() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json()).into_response()
}
