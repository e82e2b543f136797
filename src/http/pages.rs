//! The dashboard's static files: the account page, and the script (small helpers and the
//! SVG charts) and style sheet both pages share. They hold no data: the script reads the JSON API with the
//! token the page was opened with. No third-party code, no build step.

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

/// The account page.
const ACCOUNT: &str = include_str!("account.html");
/// The shared script.
const SCRIPT: &str = include_str!("dashboard.js");
/// The shared style sheet.
const STYLE: &str = include_str!("dashboard.css");

/// `GET /accounts/{id}`: the account page (the id is read by its script from the path).
#[utoipa::path(get, path = "/accounts/{id}", tag = "status", security(()),
    params(("id" = String, Path, description = "Account id")),
    responses((status = 200, description = "The account page", body = String, content_type = "text/html")))]
pub(super) async fn account() -> Html<&'static str> {
    Html(ACCOUNT)
}

/// `GET /assets/dashboard.js`: the script of both pages.
#[utoipa::path(get, path = "/assets/dashboard.js", tag = "status", security(()),
    responses((status = 200, description = "The pages' script", body = String, content_type = "text/javascript")))]
pub(super) async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

/// `GET /assets/dashboard.css`: the style sheet of both pages.
#[utoipa::path(get, path = "/assets/dashboard.css", tag = "status", security(()),
    responses((status = 200, description = "The pages' style sheet", body = String, content_type = "text/css")))]
pub(super) async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}
